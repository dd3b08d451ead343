"""The dashboard's outbox pages: the ``.eml`` files the outbox transport wrote, readable.

A message's HTML part is served on its own URL with a Content-Security-Policy that
forbids scripts and every remote load (images included) and puts it in a sandbox; the
page shows it in an ``<iframe sandbox>``, so neither the frame nor the part can run
anything or reach the dashboard.
"""

import os
import re
from email import policy
from email.parser import BytesParser
from email.utils import parsedate_to_datetime

from pyramid.httpexceptions import HTTPNotFound
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config

from . import operator_only, render, secured

PAGE_SIZE = 50
# What OutboxTransport names its files (a Message-ID): nothing that leaves the folder.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+=-]{0,250}\.eml\Z")
# The HTML part: inline styles and images carried in the message; nothing else at all.
HTML_PART_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: cid:; "
    "frame-ancestors 'self'; sandbox"
)


class Outbox:
    """The messages of one outbox folder, newest first."""

    def __init__(self, directory):
        self.directory = directory

    def names(self):
        """The message files, newest first."""
        try:
            entries = [e for e in os.scandir(self.directory) if _NAME.match(e.name)]
        except FileNotFoundError:
            return []
        entries.sort(key=lambda e: e.stat().st_mtime, reverse=True)
        return [e.name for e in entries]

    def path(self, name):
        """The file of message ``name``; None for a name the outbox cannot hold."""
        if not _NAME.match(name):
            return None
        path = os.path.join(self.directory, name)
        return path if os.path.isfile(path) else None

    def read(self, name, headers_only=False):
        """The parsed message ``name``, or None."""
        path = self.path(name)
        if path is None:
            return None
        with open(path, "rb") as handle:
            return BytesParser(policy=policy.default).parse(handle, headersonly=headers_only)

    def raw(self, name):
        """The message's bytes as written, or None."""
        path = self.path(name)
        if path is None:
            return None
        with open(path, "rb") as handle:
            return handle.read()


def summary(name, msg):
    """What the list shows of one message."""
    date = msg["Date"]
    try:
        when = parsedate_to_datetime(date).strftime("%Y-%m-%d %H:%M:%S %Z") if date else ""
    except (TypeError, ValueError):
        when = str(date)
    return {
        "name": name,
        "from": str(msg["From"] or ""),
        "to": str(msg["To"] or ""),
        "subject": str(msg["Subject"] or ""),
        "date": when,
    }


def parts(msg):
    """``(text, html, attachments)`` of a message; attachments as ``(index, name, type, size)``.

    The index counts every leaf part in ``walk()`` order: the download URL names it.
    """
    text = html = None
    attachments = []
    for index, part in enumerate(p for p in msg.walk() if not p.is_multipart()):
        disposition = part.get_content_disposition()
        kind = part.get_content_type()
        if disposition != "attachment" and kind == "text/plain" and text is None:
            text = part.get_content()
        elif disposition != "attachment" and kind == "text/html" and html is None:
            html = part.get_content()
        else:
            payload = part.get_payload(decode=True) or b""
            name = part.get_filename() or f"part-{index}"
            attachments.append((index, name, kind, len(payload)))
    return text, html, attachments


def _outbox(request):
    settings = request.registry.emailsvc.settings
    if settings["emailsvc.mail.transport"] != "outbox":
        raise HTTPNotFound()
    return Outbox(settings["emailsvc.outbox_dir"])


def _message(request):
    outbox = _outbox(request)
    name = request.matchdict["name"]
    msg = outbox.read(name)
    if msg is None:
        raise HTTPNotFound()
    return outbox, name, msg


@view_config(
    route_name="dashboard_outbox", request_method="GET", permission=NO_PERMISSION_REQUIRED
)
@operator_only
def outbox_page(request):
    """The outbox's messages, newest first: From, To, Subject, date."""
    outbox = _outbox(request)
    try:
        page = max(int(request.params.get("page", "1")), 1)
    except ValueError:
        page = 1
    names = outbox.names()
    shown = names[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    messages = []
    for name in shown:
        msg = outbox.read(name, headers_only=True)
        if msg is not None:
            messages.append(summary(name, msg))
    more = len(names) > page * PAGE_SIZE
    return render(request, "outbox.pt", messages=messages, page=page, more=more, refresh=None)


@view_config(
    route_name="dashboard_message", request_method="GET", permission=NO_PERMISSION_REQUIRED
)
@operator_only
def message_page(request):
    """One message: its headers, text part, HTML part (in a sandboxed frame), attachments."""
    _, name, msg = _message(request)
    text, html, attachments = parts(msg)
    return render(
        request,
        "message.pt",
        message=summary(name, msg),
        headers=[(key, str(value)) for key, value in msg.items()],
        text=text,
        has_html=html is not None,
        attachments=attachments,
        refresh=None,
    )


@view_config(
    route_name="dashboard_message_html", request_method="GET", permission=NO_PERMISSION_REQUIRED
)
@operator_only
def message_html(request):
    """The HTML part alone, for the sandboxed frame: no script, no remote load."""
    _, _, msg = _message(request)
    _, html, _ = parts(msg)
    if html is None:
        raise HTTPNotFound()
    response = Response(html, content_type="text/html", charset="utf-8")
    secured(response, HTML_PART_CSP)
    # Framed by the dashboard only (old browsers read this header, not the CSP's).
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@view_config(
    route_name="dashboard_message_raw", request_method="GET", permission=NO_PERMISSION_REQUIRED
)
@operator_only
def message_raw(request):
    """The message's source, as plain text."""
    outbox = _outbox(request)
    raw = outbox.raw(request.matchdict["name"])
    if raw is None:
        raise HTTPNotFound()
    response = Response(raw, content_type="text/plain", charset="utf-8")
    return secured(response, "default-src 'none'; sandbox")


@view_config(
    route_name="dashboard_message_part", request_method="GET", permission=NO_PERMISSION_REQUIRED
)
@operator_only
def message_part(request):
    """An attachment (or any other part), downloaded as a file, never shown inline."""
    _, _, msg = _message(request)
    try:
        wanted = int(request.matchdict["index"])
    except ValueError:
        raise HTTPNotFound() from None
    leaves = [p for p in msg.walk() if not p.is_multipart()]
    if not 0 <= wanted < len(leaves):
        raise HTTPNotFound()
    part = leaves[wanted]
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", part.get_filename() or f"part-{wanted}")
    response = Response(part.get_payload(decode=True) or b"")
    response.content_type = "application/octet-stream"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return secured(response, "default-src 'none'; sandbox")
