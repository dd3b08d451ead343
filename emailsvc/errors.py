"""Error responses in Cornice's format, for the errors raised outside Cornice's validators."""

from kombu.exceptions import OperationalError
from pyramid.httpexceptions import HTTPNotFound, HTTPServiceUnavailable, HTTPUnauthorized
from pyramid.security import forget
from pyramid.view import exception_view_config, forbidden_view_config, notfound_view_config
from redis.exceptions import RedisError

RETRY_AFTER_SECONDS = "5"


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
    return error_response(HTTPNotFound, "url", "", f"{request.path} was not found")


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
