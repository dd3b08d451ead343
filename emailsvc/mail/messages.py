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


def build_message(sender, recipient, subject, body, now=None):
    """Return an ``EmailMessage`` (SMTP policy) for ``recipient`` (a dict with email and name).

    The SMTP policy encodes non-ASCII headers as RFC 2047 words and refuses CR/LF in
    header values, so nothing in a subject or a name can add a header.
    """
    username, _, domain = recipient["email"].rpartition("@")
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = sender
    msg["To"] = Address(display_name=recipient.get("name") or "", username=username, domain=domain)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now or datetime.now(UTC), usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.domain or None)
    msg.set_content(body, charset="utf-8")
    return msg
