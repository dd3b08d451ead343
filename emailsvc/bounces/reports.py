"""Reading bounce and complaint reports: DSNs (RFC 3464) and ARF reports (RFC 5965).

Only the report's machine-readable part is read: the ``message/delivery-status`` part's
per-recipient ``Action``, ``Status`` and ``Diagnostic-Code`` fields, or the
``message/feedback-report`` part's ``Feedback-Type``. Nothing of the returned message's
own headers is used: which message a report is about comes from the VERP token only.
An auto-reply or a bounce in prose (no ``multipart/report``) is not a report here.
"""

import base64
import binascii
import quopri
import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.parser import HeaderParser

# An enhanced status code (RFC 3463): class.subject.detail.
_STATUS = re.compile(r"^([245])\.\d{1,3}\.\d{1,3}")
# How much of a diagnostic a job error keeps.
MAX_DIAGNOSTIC = 300


@dataclass(frozen=True)
class RecipientStatus:
    """One per-recipient block of a DSN."""

    address: str  # Original-Recipient when given, else Final-Recipient, lower-cased
    final: str  # Final-Recipient, lower-cased
    action: str  # failed, delayed, delivered, relayed or expanded
    status: str  # the enhanced status code, such as 5.1.1
    diagnostic: str  # Diagnostic-Code without its type, white space collapsed

    @property
    def kind(self):
        """``hard`` (failed, 5.x.x), ``soft`` (4.x.x) or ``other`` (delivered, relayed...)."""
        if self.action == "failed" and self.status.startswith("5"):
            return "hard"
        if self.action in ("failed", "delayed") and self.status.startswith("4"):
            return "soft"
        return "other"


@dataclass
class Report:
    """A parsed report: ``kind`` is ``dsn`` or ``complaint``."""

    kind: str
    recipients: list = field(default_factory=list)
    feedback_type: str = ""


def _address(value):
    # "rfc822; ana@example.org" (RFC 3464 2.3.2): the type, then the address.
    _, _, address = str(value or "").partition(";")
    return address.strip().strip("<>").lower()


def _blocks(part):
    """The header blocks of a ``message/delivery-status`` part, per-message block first."""
    payload = part.get_payload()
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding not in ("base64", "quoted-printable"):
        return payload if isinstance(payload, list) else _split(str(payload))
    # Some MTAs encode the part; the email package parses it as blocks all the same (of
    # lines without headers): its text is put back together, then decoded.
    if isinstance(payload, list):
        payload = "".join(block.as_string() for block in payload)
    raw = str(payload).encode("ascii", "replace")
    try:
        data = base64.b64decode(raw) if encoding == "base64" else quopri.decodestring(raw)
    except binascii.Error:
        return []
    return _split(data.decode("utf-8", "replace"))


def _split(text):
    chunks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    return [HeaderParser(policy=policy.default).parsestr(chunk + "\n") for chunk in chunks]


def _recipient(block):
    status = _STATUS.match(str(block.get("Status", "")).strip())
    if status is None:
        return None
    final = _address(block.get("Final-Recipient"))
    original = _address(block.get("Original-Recipient"))
    diagnostic = str(block.get("Diagnostic-Code", "")).partition(";")[2]
    return RecipientStatus(
        address=original or final,
        final=final,
        action=str(block.get("Action", "")).strip().lower(),
        status=status.group(0),
        diagnostic=" ".join(diagnostic.split())[:MAX_DIAGNOSTIC],
    )


def _feedback_type(part):
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        fields = payload[0]
    else:
        text = part.get_payload(decode=True) or b""
        fields = HeaderParser(policy=policy.default).parsestr(text.decode("utf-8", "replace"))
    return str(fields.get("Feedback-Type", "")).strip().lower()


def parse_report(data):
    """The ``Report`` in a message's bytes, or None when it holds no report we read."""
    msg = message_from_bytes(data, policy=policy.default)
    if msg.get_content_type() != "multipart/report" or not msg.is_multipart():
        return None
    report_type = str(msg.get_param("report-type", "")).lower()
    parts = msg.get_payload()
    if report_type == "delivery-status":
        for part in parts:
            if part.get_content_type() == "message/delivery-status":
                blocks = _blocks(part)[1:]
                recipients = [r for r in map(_recipient, blocks) if r is not None]
                return Report("dsn", recipients) if recipients else None
    if report_type == "feedback-report":
        for part in parts:
            if part.get_content_type() == "message/feedback-report":
                kind = _feedback_type(part)
                return Report("complaint", feedback_type=kind) if kind else None
    return None
