"""One-click unsubscribe (RFC 8058): ``GET`` and ``POST /unsubscribe/{token}``.

The links of broadcast messages lead here. ``POST`` with the body
``List-Unsubscribe=One-Click`` (what mail providers send, and what the page's button
sends) suppresses the address at once, with no authentication, cookie or redirect.
``GET`` only shows a page with that button: link scanners fetch every URL of a message,
and must unsubscribe nobody. A token this service did not mint answers 404.

These URLs are for mail readers and people, not API clients: they are not in the SPORE
or OpenAPI descriptions.
"""

import os

from chameleon import PageTemplateFile
from cornice import Service
from pyramid.httpexceptions import HTTPBadRequest, HTTPNotFound
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED

from ..mail.unsubscribe import ONE_CLICK, PREVIEW_JOB
from .errors import error_response

PAGE = PageTemplateFile(
    os.path.join(os.path.dirname(__file__), "templates", "unsubscribe.pt"),
    auto_reload=False,
    encoding="utf-8",
)
# The page loads nothing and posts only to itself.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

unsubscribe = Service(
    name="unsubscribe",
    path="/unsubscribe/{token}",
    description="One-click unsubscribe from a broadcast message's link (RFC 8058).",
)


def _target(request):
    """``(client, address, job_id)`` of the URL's token, or None when it is not ours."""
    found = request.registry.emailsvc.unsubscribe.read(request.matchdict["token"])
    # A preview's links (POST /email/render) name no job and unsubscribe nobody.
    if found is None or found[2] == PREVIEW_JOB:
        return None
    return found


def _unknown():
    return error_response(HTTPNotFound, "path", "token", "This unsubscribe link is not valid")


def masked(address):
    """The address as the page shows it: its first character and its domain."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _page(address, done):
    response = Response(PAGE(address=masked(address), done=done), content_type="text/html")
    response.headers["Content-Security-Policy"] = PAGE_CSP
    # The URL is the token: it must not leak to another site, nor stay in a cache.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


# Reached from a message, by anyone who has it: no key, whatever the service requires.
@unsubscribe.get(permission=NO_PERMISSION_REQUIRED)
def unsubscribe_page(request):
    """The confirmation page: a button that posts the one-click body. Changes nothing."""
    target = _target(request)
    if target is None:
        return _unknown()
    return _page(target[1], done=False)


@unsubscribe.post(permission=NO_PERMISSION_REQUIRED)
def unsubscribe_now(request):
    """Suppress the token's address for its client (reason ``unsubscribed``), at once."""
    target = _target(request)
    if target is None:
        return _unknown()
    name, _, value = ONE_CLICK.partition("=")
    if request.POST.get(name) != value:
        description = f"The body must be {ONE_CLICK} (form-encoded)"
        return error_response(HTTPBadRequest, "body", name, description)
    client, address, job_id = target
    request.registry.emailsvc.suppressions.add(client, address, "unsubscribed", job_id)
    return _page(address, done=True)


def includeme(config):
    """``GET`` and ``POST /unsubscribe/{token}``."""
    config.scan(__name__)
