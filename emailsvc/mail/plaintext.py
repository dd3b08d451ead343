"""Plain-text messages as bytes, from header lines folded once per chunk.

Building an ``EmailMessage`` and flattening it costs about a millisecond per message,
almost all of it in headers that are the same for every recipient of a chunk (From,
Subject, Date, Reply-To, the job's own headers). A ``PlainTextFrame`` folds those once,
through the same ``policy.SMTP`` objects the ``Composer`` uses, and then writes each
recipient's message by joining bytes: its To and Message-ID lines (and a broadcast's
List-Unsubscribe, the recipient's own link) and its body, encoded
as ``EmailMessage.set_content`` encodes a short-lined text (7bit or 8bit).

Only messages whose result is certain take this path: a text job (no HTML, attachment
or PDF), no Cc header, an ASCII envelope, a recipient address and name of the plainest
shape, and a body whose lines all fit the policy's line length. Everything else is built
the long way.
``tests/test_plaintext.py`` holds both paths to the same bytes on generated messages.
"""

import re
from email import policy

from .messages import build_message

SMTP = policy.SMTP
_CRLF = b"\r\n"
# An address whose ``Address`` header needs no quoting: a dot-atom local part, a domain of
# letters, digits, hyphens and dots (ASCII only, so IDNA never applies).
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
)
# A display name of words of letters and digits, one space between them: written as is.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")
# The placeholders the prototype message carries where each recipient's values go.
_PROTO_TO = {"email": "to@frame.invalid"}
_PROTO_ID = "<id@frame.invalid>"
# The headers each recipient's message has its own line of (List-Unsubscribe: its link).
_SLOTS = ("to", "message-id", "content-transfer-encoding", "list-unsubscribe")


def plain_frame(composer):
    """A ``PlainTextFrame`` for the composer's job, or None when its messages are not
    plain text with headers shared by every recipient."""
    if composer.html or not composer.has_text or composer.inline or composer.attached:
        return None
    if composer.pdf_attachments or composer.templates.has_subject(composer.template):
        return None
    if not composer.sender.addr_spec.isascii():
        # An international envelope needs SMTPUTF8 and the UTF-8 policy: the long way.
        return None
    return PlainTextFrame(composer)


class PlainTextFrame:
    """The folded header lines of one chunk's plain-text messages, with the slots each
    recipient fills: To, Message-ID and Content-Transfer-Encoding."""

    def __init__(self, composer):
        proto = build_message(
            composer.sender, _PROTO_TO, composer.subject, "", now=composer.date, msgid=_PROTO_ID
        )
        composer.add_job_headers(proto, _PROTO_TO)
        self.unsubscribe = composer.unsubscribe if composer.adds_list_unsubscribe else None
        # A job's own List-Unsubscribe is the same for every recipient: no slot then.
        slots = _SLOTS if self.unsubscribe is not None else _SLOTS[:-1]
        self.lines = []
        for name, value in proto.raw_items():
            folded = SMTP.fold_binary(name, value)
            # A slot is its header's name; a line shared by every recipient is bytes.
            slot = name.lower()
            self.lines.append(slot if slot in slots else folded)

    def build(self, recipient, msgid, text):
        """The message's bytes, or None when it must be built as an ``EmailMessage``."""
        if recipient.get("cc"):
            return None
        if not all(copy["email"].isascii() for copy in recipient.get("bcc") or ()):
            return None
        email = recipient["email"]
        name = recipient.get("name") or ""
        if not _PLAIN_ADDRESS.fullmatch(email) or (name and not _PLAIN_NAME.fullmatch(name)):
            return None
        to = f"To: {name} <{email}>" if name else f"To: {email}"
        message_id = f"Message-ID: {msgid}"
        if len(to) > SMTP.max_line_length or len(message_id) > SMTP.max_line_length:
            return None
        body = text.encode("utf-8").splitlines()
        if max((len(line) for line in body), default=0) > SMTP.max_line_length:
            return None
        cte = b"7bit" if text.isascii() else b"8bit"
        slots = {
            "to": to.encode("ascii") + _CRLF,
            "message-id": message_id.encode("ascii") + _CRLF,
            "content-transfer-encoding": b"Content-Transfer-Encoding: " + cte + _CRLF,
        }
        if self.unsubscribe is not None:
            header = self.unsubscribe.header(email)
            slots["list-unsubscribe"] = SMTP.fold_binary(header.name, header)
        head = b"".join(slots[line] if isinstance(line, str) else line for line in self.lines)
        return head + _CRLF + _CRLF.join(body) + _CRLF
