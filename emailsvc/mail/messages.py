"""Building one recipient's MIME message."""

from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid


def sender_address(address, display_name=""):
    """The From address of every message, from ``emailsvc.sender`` and ``sender_name``."""
    username, _, domain = address.rpartition("@")
    return Address(display_name=display_name, username=username, domain=domain)


def message_id(job_id, index, domain):
    """The Message-ID of one recipient's message of a job: the same at every attempt.

    A message sent again after a crash or a timeout after the final dot then carries the
    Message-ID of the first copy, so that receivers can drop the duplicate.
    """
    return f"<{job_id}.{index}@{domain or 'localhost'}>"


def build_message(sender, recipient, subject, body, now=None, msgid=None):
    """Return an ``EmailMessage`` (SMTP policy) for ``recipient`` (a dict with email and name).

    The SMTP policy encodes non-ASCII headers as RFC 2047 words and refuses CR/LF in
    header values, so nothing in a subject or a name can add a header. ``msgid`` is the
    Message-ID (see ``message_id``); a new one is made when it is not given.
    """
    username, _, domain = recipient["email"].rpartition("@")
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = sender
    msg["To"] = Address(display_name=recipient.get("name") or "", username=username, domain=domain)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now or datetime.now(UTC), usegmt=True)
    msg["Message-ID"] = msgid or make_msgid(domain=sender.domain or None)
    msg.set_content(body, charset="utf-8")
    return msg
