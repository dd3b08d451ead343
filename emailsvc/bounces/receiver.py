"""The SMTP server of ``emailsvc-bounces``: takes reports for the VERP addresses only.

RCPT is refused (550) for any address that is not ``bounces+...@<bounce domain>``, so the
receiver relays nothing and takes no other mail. A message is answered 250 once it was
acted on or kept in the dead-letter folder: a sender never retries a report we cannot
read. Only when Redis does not answer is it 451, and the sender tries again later.
"""

import asyncio
import logging
import os
import tempfile
import uuid
from datetime import UTC, datetime

from aiosmtpd.controller import Controller
from redis.exceptions import RedisError

from .actions import DeadLetter
from .reports import parse_report

log = logging.getLogger(__name__)


class DeadLetters:
    """The folder of messages the receiver could not act on, one ``.eml`` file each.

    Each file is the message as received, after two header lines saying why and to whom
    it came (``X-Emailsvc-Dead-Letter``, ``X-Emailsvc-Envelope``).
    """

    def __init__(self, directory):
        self.directory = directory

    def keep(self, data, reason, mail_from, rcpt_tos):
        """Write the message atomically; return the file's path."""
        os.makedirs(self.directory, exist_ok=True)
        moment = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = os.path.join(self.directory, f"{moment}-{uuid.uuid4().hex[:12]}.eml")
        envelope = f"from=<{mail_from}> to={','.join(f'<{r}>' for r in rcpt_tos)}"
        head = f"X-Emailsvc-Dead-Letter: {_one_line(reason)}\r\n"
        head += f"X-Emailsvc-Envelope: {_one_line(envelope)}\r\n"
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(head.encode("ascii", "replace") + data)
        os.replace(tmp, path)
        return path

    def files(self):
        """The paths of the kept messages, oldest first."""
        if not os.path.isdir(self.directory):
            return []
        names = sorted(n for n in os.listdir(self.directory) if n.endswith(".eml"))
        return [os.path.join(self.directory, name) for name in names]


def _one_line(text):
    return " ".join(str(text).split())[:900]


class BounceHandler:
    """An aiosmtpd handler acting on the reports with ``actions`` (``BounceActions``)."""

    def __init__(self, actions, dead_letters):
        self.actions = actions
        self.dead_letters = dead_letters

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        """Take only the VERP addresses of the bounce domain."""
        if not self.actions.verp.accepts(address):
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        """Act on the message for each recipient, off the event loop (Redis blocks)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.process, envelope)

    def process(self, envelope):
        """The reply to one message: 250 when acted on or kept, 451 when Redis is down."""
        data = envelope.original_content or envelope.content
        try:
            try:
                report = parse_report(data)
            except Exception:  # noqa: BLE001 - any mail may reach us: it is kept, not lost
                log.exception("a message could not be parsed")
                report = None
            reasons = []
            for rcpt in envelope.rcpt_tos:
                try:
                    for kind, text in self.actions.handle(rcpt, report):
                        log.info("report to %s: %s", rcpt, text)
                        self._count(kind)
                except DeadLetter as exc:
                    reasons.append(str(exc))
                except RedisError:
                    raise
                except Exception as exc:  # noqa: BLE001 - kept rather than refused with a 500
                    log.exception("the report to %s could not be handled", rcpt)
                    reasons.append(f"could not be handled ({type(exc).__name__}: {exc})")
            if reasons:
                path = self.dead_letters.keep(
                    data, "; ".join(reasons), envelope.mail_from, envelope.rcpt_tos
                )
                log.warning("kept in the dead-letter folder (%s): %s", "; ".join(reasons), path)
                self._count("dead_letter")
        except (RedisError, OSError):
            # Redis did not answer, or the dead-letter folder cannot be written: nothing
            # is lost, the sender keeps the report and tries again.
            log.exception("a report could not be recorded: the sender will try again")
            return "451 4.3.0 Temporary failure, try again later"
        return "250 OK"

    def _count(self, kind):
        # Counted after the fact: a count lost to Redis is no reason to have it sent again.
        try:
            self.actions.jobs.count_report(kind)
        except RedisError:
            log.warning("the %s report was not counted: Redis did not answer", kind)


def controller(handler, settings):
    """The aiosmtpd ``Controller`` serving ``handler`` where the settings say, not started."""
    return Controller(
        handler,
        hostname=settings["emailsvc.bounces.host"],
        port=settings["emailsvc.bounces.port"],
        # Larger messages get 552: a report is small, and its quoted message is optional.
        data_size_limit=settings["emailsvc.bounces.max_message_bytes"],
    )
