"""One job's messages, recipient by recipient: text, HTML, attachments, headers, PDFs.

A ``Composer`` is made once per chunk (or per ``POST /email/render``) from the job's
stored fields and its stored content: attachments are decoded and their MIME parts built
once, then shared by every recipient's message. Everything it receives was validated by
the API's schemas; the message itself is built with ``EmailMessage`` and ``policy.SMTP``,
which refuses CR/LF in any header.

The MIME tree: ``text/plain`` alone for a text job (as before); with HTML,
``multipart/alternative`` (text first, HTML second), whose HTML part becomes
``multipart/related`` with the inline images; with attachments (PDFs included), all of
it inside ``multipart/mixed``.
"""

import base64
import json
import re
from email import policy
from email.headerregistry import Address
from email.message import MIMEPart
from email.utils import format_datetime
from functools import cached_property

from .html_text import html_to_text
from .messages import build_message
from .plaintext import plain_frame
from .templates import RenderError
from .unsubscribe import LIST_UNSUBSCRIBE, LIST_UNSUBSCRIBE_POST, ONE_CLICK, OWNED_BY_JOB

# A placeholder of a PDF's filename: ``${order}`` takes the recipient's var ``order``.
# Replaced as text, never compiled: a filename is no template.
PLACEHOLDER = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_]{0,63})\}")
# What a recipient's var may not bring into a filename.
_PATH_CHARACTERS = re.compile(r"[/\\]")


def load_content(stored):
    """The job's stored content (a JSON string, or None for a plain-text job)."""
    return json.loads(stored) if stored else None


def dump_content(body):
    """The part of a validated job body stored once beside the job, or None when none is.

    A plain-text job stores nothing more than before.
    """
    content = {
        "html": body.get("html", ""),
        "has_text": "content" in body,
        "attachments": body.get("attachments", []),
        "reply_to": body.get("reply_to", ""),
        "headers": body.get("headers", {}),
        "pdf_attachments": body.get("pdf_attachments", []),
    }
    if not any(content[key] for key in ("html", "attachments", "reply_to", "headers")):
        if not content["pdf_attachments"]:
            return None
    return json.dumps(content, ensure_ascii=False)


def attachment_part(attachment, data=None):
    """The MIME part of one attachment (inline when it has a ``content_id``)."""
    if data is None:
        data = base64.b64decode(attachment["content"])
    maintype, _, subtype = attachment["content_type"].partition("/")
    part = MIMEPart(policy=policy.SMTP)
    content_id = attachment.get("content_id")
    part.set_content(
        data,
        maintype=maintype,
        subtype=subtype,
        disposition="inline" if content_id else "attachment",
        filename=attachment["filename"],
        cid=f"<{content_id}>" if content_id else None,
    )
    return part


def pdf_filename(pattern, variables):
    """A PDF's filename for one recipient: its ``${var}`` placeholders replaced as text."""

    def value(match):
        name = match.group(1)
        if name not in variables:
            raise RenderError(f"the PDF filename needs a variable this recipient lacks: {name}")
        return _PATH_CHARACTERS.sub("_", str(variables[name]))

    return PLACEHOLDER.sub(value, pattern)


class Composer:
    """Builds the messages of one job; made once per chunk, used for each recipient."""

    def __init__(self, templates, job, content, sender, date, pdf=None, unsubscribe=None):
        self.templates = templates
        self.template = job["template"]
        self.subject = job["subject"]
        self.sender = sender
        self.date = date
        self.pdf = pdf
        content = content or {}
        self.html = content.get("html", "")
        # A job with HTML and no "content" gets its text part from the HTML.
        self.has_text = content.get("has_text", True)
        self.reply_to = content.get("reply_to", "")
        self.headers = content.get("headers", {})
        self.pdf_attachments = content.get("pdf_attachments", [])
        #: A broadcast job's ``UnsubscribeLinks``; None for a transactional job.
        self.unsubscribe = unsubscribe if job.get("stream") == "broadcast" else None
        named = {name.lower() for name in self.headers}
        # A job that sets either List-Unsubscribe header owns both: the service adds neither.
        self.adds_list_unsubscribe = self.unsubscribe is not None and not named & OWNED_BY_JOB
        self.adds_precedence = self.unsubscribe is not None and "precedence" not in named
        self.inline, self.attached = [], []
        for attachment in content.get("attachments", []):
            part = attachment_part(attachment)
            (self.inline if attachment.get("content_id") else self.attached).append(part)
        # What every recipient's template shares, worked out once, not per message.
        self.shared = {
            "sender": str(sender),
            "subject": self.subject,
            "content": job.get("content", ""),
            "html": self.html,
            "date": format_datetime(date, usegmt=True),
        }

    def variables(self, recipient):
        """What the templates see for ``recipient``: its vars, then the shared names."""
        variables = {**(recipient.get("vars") or {}), **self.shared}
        variables.update(to=recipient["email"], name=recipient.get("name") or "")
        links = self.unsubscribe
        variables["unsubscribe_url"] = links.url(recipient["email"]) if links else ""
        return variables

    def parts(self, recipient):
        """``(subject, text, html)`` of the recipient's message (``html`` empty when none)."""
        variables = self.variables(recipient)
        subject = self.subject
        if self.templates.has_subject(self.template):
            subject = self.templates.render_subject(self.template, variables)
            if "=?" in subject or not subject:
                raise RenderError("the subject template gave an empty or encoded subject")
        html = ""
        if self.html:
            html = self.html
            if self.templates.has_html(self.template):
                html = self.templates.render_html(self.template, variables)
        if self.has_text:
            if self.templates.has_text(self.template):
                text = self.templates.render(self.template, variables)
            else:
                text = variables["content"]
        else:
            text = html_to_text(html)
        return subject, text, html

    def envelope(self, recipient):
        """The addresses the recipient's message goes to: the recipient, its cc, its bcc."""
        addresses = [recipient["email"]]
        for copy in (recipient.get("cc") or []) + (recipient.get("bcc") or []):
            if copy["email"] not in addresses:
                addresses.append(copy["email"])
        return addresses

    def compose(self, recipient, msgid):
        """The recipient's message, and ``(subject, text, html)`` as rendered."""
        parts = self.parts(recipient)
        return self._build(recipient, msgid, *parts), parts

    def _build(self, recipient, msgid, subject, text, html):
        msg = build_message(self.sender, recipient, subject, text, now=self.date, msgid=msgid)
        if recipient.get("cc"):
            msg["Cc"] = [_address(copy) for copy in recipient["cc"]]
        # Bcc addresses are in the envelope only: no header names them.
        self.add_job_headers(msg, recipient)
        if html:
            msg.add_alternative(html, subtype="html", charset="utf-8")
            if self.inline:
                html_part = msg.get_payload()[1]
                html_part.make_related()
                # The email package gives a sub-part its own MIME-Version; only the top has one.
                del html_part["MIME-Version"]
                for part in self.inline:
                    html_part.attach(part)
        attached = list(self.attached)
        if self.pdf_attachments:
            attached += self._pdfs(recipient)
        if attached:
            msg.make_mixed()
            for part in attached:
                msg.attach(part)
        return msg

    def add_job_headers(self, msg, recipient):
        """Add the headers every message of the job carries: Reply-To, the job's own, and
        a broadcast's List-Unsubscribe (the recipient's own link), List-Unsubscribe-Post
        and Precedence."""
        if self.reply_to:
            msg["Reply-To"] = _address({"email": self.reply_to})
        for name, value in self.headers.items():
            msg[name] = value
        if self.adds_list_unsubscribe:
            msg[LIST_UNSUBSCRIBE] = self.unsubscribe.header(recipient["email"])
            msg[LIST_UNSUBSCRIBE_POST] = ONE_CLICK
        if self.adds_precedence:
            msg["Precedence"] = "bulk"

    @cached_property
    def frame(self):
        """The header lines of a plain-text job, folded once (None for other jobs)."""
        return plain_frame(self)

    def message(self, recipient, msgid):
        """The recipient's message to send: bytes when the job's plain-text frame can
        write it (``mail.plaintext``), else an ``EmailMessage``."""
        subject, text, html = self.parts(recipient)
        if self.frame is not None:
            data = self.frame.build(recipient, msgid, text)
            if data is not None:
                return data
        return self._build(recipient, msgid, subject, text, html)

    def _pdfs(self, recipient):
        if self.pdf is None:
            raise RenderError("PDF attachments need the pdf extra (WeasyPrint), not installed")
        variables = self.variables(recipient)
        parts = []
        for spec in self.pdf_attachments:
            filename = pdf_filename(spec["filename"], recipient.get("vars") or {})
            data = self.pdf.render(spec["template"], variables)
            attachment = {"filename": filename, "content_type": "application/pdf"}
            parts.append(attachment_part(attachment, data))
        return parts


def _address(entry):
    username, _, domain = entry["email"].rpartition("@")
    return Address(display_name=entry.get("name") or "", username=username, domain=domain)
