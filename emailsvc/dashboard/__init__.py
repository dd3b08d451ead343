"""The operator dashboard at ``/dashboard/``: jobs and, in development, the outbox's mail.

Server-rendered Chameleon pages, no JavaScript: a page that is still changing refreshes
itself (``<meta http-equiv="refresh">``). Off unless ``emailsvc.dashboard.enabled``.

Access: an operator logs in with ``emailsvc.dashboard.operator_key`` (from the
environment); the session is Pyramid's signed cookie (``HttpOnly``, ``SameSite=Strict``,
``Secure`` whenever the request came over https, limited to ``/dashboard``), every form
carries Pyramid's CSRF token, and every page is served with a strict
Content-Security-Policy. ``emailsvc.dashboard.require_login = false`` (development.ini)
skips the login on a developer's machine.
"""

import hashlib
import hmac
import logging
import os
import secrets
from functools import wraps

from chameleon import PageTemplateLoader
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.response import Response
from pyramid.session import SignedCookieSessionFactory

from ..settings import SettingsError

log = logging.getLogger(__name__)

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = PageTemplateLoader(os.path.join(HERE, "templates"), ".pt")
SESSION_SECONDS = 8 * 3600
COOKIE = "emailsvc_dashboard"

# Only our own stylesheet; no script anywhere; the outbox's HTML parts in frames of ours.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def session_factory(secret):
    """Pyramid's signed cookie session, ``Secure`` when the request came over https.

    Behind nginx, waitress takes the scheme from ``X-Forwarded-Proto`` of the trusted proxy.
    """
    options = {
        "cookie_name": COOKIE,
        "path": "/dashboard",
        "httponly": True,
        "samesite": "Strict",
        "timeout": SESSION_SECONDS,
        "reissue_time": SESSION_SECONDS // 10,
    }
    plain = SignedCookieSessionFactory(secret, secure=False, **options)
    secure = SignedCookieSessionFactory(secret, secure=True, **options)

    def factory(request):
        return (secure if request.scheme == "https" else plain)(request)

    return factory


def session_secret(settings):
    """The key that signs sessions: derived from the operator key, so that every web process
    of a deployment signs alike and rotating the key ends every session."""
    key = settings["emailsvc.dashboard.operator_key"]
    if not key:
        # No login (development): sessions only carry the CSRF token; one process.
        return secrets.token_hex(32)
    return hmac.new(key.encode(), b"emailsvc dashboard session", hashlib.sha256).hexdigest()


def render(request, name, status=200, csp=PAGE_CSP, **values):
    """Render template ``name`` into a response with the dashboard's security headers."""
    values.setdefault("csrf_token", request.session.get_csrf_token())
    values.setdefault("logged_in", logged_in(request))
    values.setdefault("login_required", login_required(request))
    values.setdefault("outbox", outbox_enabled(request))
    values["layout"] = TEMPLATES["layout.pt"]
    values["request"] = request
    response = Response(TEMPLATES[name](**values), status=status)
    return secured(response, csp)


def secured(response, csp=PAGE_CSP):
    """Add the dashboard's headers: CSP, no sniffing, no referrer, no caching."""
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def login_required(request):
    """Whether this deployment asks operators to log in."""
    return request.registry.emailsvc.settings["emailsvc.dashboard.require_login"]


def logged_in(request):
    """Whether the request's session belongs to an operator who logged in."""
    return bool(request.session.get("operator"))


def outbox_enabled(request):
    """Whether mail goes to the outbox folder (the outbox pages exist then)."""
    return request.registry.emailsvc.settings["emailsvc.mail.transport"] == "outbox"


def operator_only(view):
    """Send a visitor who has not logged in to the login page."""

    @wraps(view)
    def wrapper(request):
        if login_required(request) and not logged_in(request):
            return HTTPSeeOther(request.route_url("dashboard_login"))
        return view(request)

    return wrapper


def includeme(config):
    """The dashboard's session, routes and views, when ``emailsvc.dashboard.enabled``."""
    settings = config.registry.emailsvc.settings
    if not settings["emailsvc.dashboard.enabled"]:
        return
    if (
        settings["emailsvc.dashboard.require_login"]
        and not settings["emailsvc.dashboard.operator_key"]
    ):
        raise SettingsError(
            "emailsvc.dashboard.operator_key (EMAILSVC_DASHBOARD_OPERATOR_KEY) must be set "
            "when the dashboard is enabled and requires a login"
        )
    if not settings["emailsvc.dashboard.require_login"]:
        log.warning("the dashboard at /dashboard/ requires no login: for a developer's machine")
    config.set_session_factory(session_factory(session_secret(settings)))
    config.add_static_view("dashboard/static", "emailsvc.dashboard:static", cache_max_age=3600)
    config.add_route("dashboard_jobs", "/dashboard/")
    config.add_route("dashboard_job", "/dashboard/jobs/{job_id}")
    config.add_route("dashboard_login", "/dashboard/login")
    config.add_route("dashboard_logout", "/dashboard/logout")
    config.add_route("dashboard_outbox", "/dashboard/outbox/")
    config.add_route("dashboard_message", "/dashboard/outbox/{name}")
    config.add_route("dashboard_message_html", "/dashboard/outbox/{name}/html")
    config.add_route("dashboard_message_raw", "/dashboard/outbox/{name}/raw")
    config.add_route("dashboard_message_part", "/dashboard/outbox/{name}/parts/{index}")
    config.scan(".views")
    config.scan(".outbox")
