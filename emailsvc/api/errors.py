"""Error responses in Cornice's format, for the errors raised outside Cornice's validators.

Every error answer of the service is JSON in that format: unknown URLs, methods a service
does not have (405), refusals, unavailable backends and, last, any unexpected exception
(500, with no internals in the body; the traceback goes to the log).
"""

import json
import logging

from kombu.exceptions import OperationalError
from pyramid.httpexceptions import (
    HTTPException,
    HTTPInternalServerError,
    HTTPNotFound,
    HTTPServiceUnavailable,
    HTTPUnauthorized,
)
from pyramid.security import forget
from pyramid.view import exception_view_config, forbidden_view_config, notfound_view_config
from redis.exceptions import RedisError

from ..logs import redacted

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "5"
EXCERPT_CHARS = 40


def excerpt(value, limit=EXCERPT_CHARS):
    """A short, escaped excerpt of a client's value, for an error message.

    Messages name what was wrong; they never print the client's data back beyond this: at
    most ``limit`` characters, quoted, with control characters, non-ASCII and ``<>&``
    escaped as JSON ``\\u`` escapes (harmless in a log line or an HTML page).
    """
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    short = text[:limit]
    quoted = json.dumps(short, ensure_ascii=True)
    for char in "<>&":
        quoted = quoted.replace(char, f"\\u{ord(char):04x}")
    return quoted + ("…" if len(text) > limit else "")


def error_response(http_class, location, name, description, **headers):
    """Return an HTTP error whose JSON body has Cornice's ``{"status", "errors"}`` shape."""
    response = http_class(headers=headers)
    response.content_type = "application/json"
    response.json_body = {
        "status": "error",
        "errors": [{"location": location, "name": name, "description": description}],
    }
    return response


@notfound_view_config()
def not_found(request):
    """Unknown URLs answer JSON too."""
    return error_response(HTTPNotFound, "url", "", f"{excerpt(request.path)} was not found")


@forbidden_view_config()
def unauthorized(exc, request):
    """No valid API key: 401 with the Bearer challenge. Other refusals keep their own body."""
    if request.identity is not None:
        return exc
    given = "Invalid" if request.headers.get("Authorization") else "Missing"
    description = f"{given} API key: send 'Authorization: Bearer <key>'"
    return error_response(
        HTTPUnauthorized, "header", "Authorization", description, **dict(forget(request))
    )


@exception_view_config(RedisError)
@exception_view_config(OperationalError)
def storage_unavailable(exc, request):
    """Redis (job store or broker) cannot answer: ask the client to come back later."""
    return error_response(
        HTTPServiceUnavailable,
        "",
        "",
        "The job store is unavailable; nothing was recorded, try again later",
        **{"Retry-After": RETRY_AFTER_SECONDS},
    )


@exception_view_config(HTTPException)
def http_error(exc, request):
    """HTTP errors raised as plain text (405, ...) answer JSON; JSON ones pass unchanged."""
    if exc.status_code < 400 or exc.content_type == "application/json":
        return exc
    # The class's own title and explanation: fixed texts that echo nothing of the request.
    description = f"{exc.title}: {exc.explanation}" if exc.explanation else exc.title
    response = error_response(type(exc), "", "", description)
    for name in ("Allow", "Retry-After", "WWW-Authenticate"):
        if name in exc.headers:
            response.headers[name] = exc.headers[name]
    return response


@exception_view_config(Exception)
def unexpected_error(exc, request):
    """Anything unexpected: 500 in the API's format, the traceback in the log only."""
    log.error("unexpected error on %s %s", request.method, redacted(request.path), exc_info=exc)
    return error_response(
        HTTPInternalServerError, "", "", "Internal error; it was logged, try again later"
    )


def includeme(config):
    """The error views of every URL of the service."""
    config.scan(__name__)
