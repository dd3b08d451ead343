"""What a bounce or complaint report does: suppressions, job errors and counts.

The report's envelope recipient (``bounces+<token>@<bounce domain>``) names the job and
the recipient; the job's record gives the client and the address. Then:

- a hard bounce (``Action: failed``, ``Status: 5.x.x``) suppresses the address for that
  client (reason ``bounced``, with the job) and, if the recipient's outcome is ``sent``,
  adds ``{"recipient", "code", "message": "bounced: <status> <diagnostic>"}`` to the
  job's errors. The outcome stays ``sent`` (it is written once, and the relay did take
  the message); the job counts it in ``bounced``, a part of ``sent``;
- a complaint (an ARF report) suppresses the address (reason ``complained``);
- a soft bounce (4.x.x) is counted (``soft_bounced``) and changes nothing else;
- a success DSN (delivered, relayed, expanded) is counted and ignored.

A report whose token does not verify, that is no report, or whose job's record has
expired raises ``DeadLetter``: the receiver keeps the message in its dead-letter folder.
"""

import re

# The SMTP reply a diagnostic begins with ("550-5.1.1 The email account ...").
_REPLY_CODE = re.compile(r"^([245]\d\d)\b")


class DeadLetter(Exception):
    """The message cannot be acted on; the text says why."""


def _copies(recipient):
    return [copy["email"] for kind in ("cc", "bcc") for copy in recipient.get(kind) or ()]


def _by_address(report, recipient):
    """``{address: [RecipientStatus]}``: each block of the report under the message's
    envelope address it names. A block naming none of them (a forward rewrote it) is
    the recipient's own."""
    main = recipient["email"]
    known = {address.lower(): address for address in [main, *_copies(recipient)]}
    grouped = {}
    for block in report.recipients:
        address = known.get(block.address) or known.get(block.final) or main
        grouped.setdefault(address, []).append(block)
    return grouped


def _worst(blocks):
    for kind in ("hard", "soft"):
        for block in blocks:
            if block.kind == kind:
                return block
    return blocks[0]


def _code(diagnostic):
    # A job error's code is an SMTP reply code, when the remote server gave one.
    match = _REPLY_CODE.match(diagnostic)
    return int(match.group(1)) if match else None


class BounceActions:
    """Acts on the reports sent to VERP addresses."""

    def __init__(self, jobs, suppressions, verp):
        self.jobs = jobs
        self.suppressions = suppressions
        self.verp = verp

    def handle(self, rcpt, report):
        """Act on ``report`` (a ``reports.Report`` or None) sent to ``rcpt``.

        Returns ``[(kind, text)]``, one per address the report is about: ``kind`` is
        ``hard_bounce``, ``soft_bounce``, ``complaint`` or ``other``, ``text`` what was done,
        for the log. Raises ``DeadLetter``.
        """
        found = self.verp.read(rcpt)
        if found is None:
            raise DeadLetter(f"the token of {rcpt} does not verify")
        if report is None:
            raise DeadLetter("not a delivery status or feedback report")
        job_id, index = found
        job = self.jobs.message(job_id)
        recipients = self.jobs.recipients(job_id, index, 1) if job else []
        if not recipients:
            raise DeadLetter(f"job {job_id} is no longer recorded")
        client, recipient = job.get("client", ""), recipients[0]
        if report.kind == "complaint":
            self.suppressions.add(client, recipient["email"], "complained", job_id)
            self.jobs.record_report(job_id, index, "complained")
            text = f"complaint ({report.feedback_type}): job {job_id} recipient {index}"
            return [("complaint", text)]
        return [
            self._dsn(client, job_id, index, recipient, address, _worst(blocks))
            for address, blocks in _by_address(report, recipient).items()
        ]

    def _dsn(self, client, job_id, index, recipient, address, block):
        where = f"job {job_id} recipient {index}"
        if block.kind == "hard":
            self.suppressions.add(client, address, "bounced", job_id)
            if address != recipient["email"]:
                # A cc or bcc copy: suppressed, the recipient's own outcome untouched.
                self.jobs.record_report(job_id, index, "copies_bounced")
                return "hard_bounce", f"hard bounce {block.status} of a copy: {where}"
            message = f"bounced: {block.status} {block.diagnostic}".rstrip()
            error = {"recipient": address, "code": _code(block.diagnostic), "message": message}
            self.jobs.record_report(job_id, index, "bounced", error)
            return "hard_bounce", f"hard bounce {block.status}: {where}"
        if block.kind == "soft":
            self.jobs.record_report(job_id, index, "soft_bounced", once=False)
            return "soft_bounce", f"soft bounce {block.status}: {where}, counted"
        return "other", f"{block.action or 'report'} {block.status}: {where}, nothing to do"
