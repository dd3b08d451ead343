"""Every request's id and its one log line: method, path, status, duration, request and job.

The id comes from ``X-Request-ID`` when nginx (or another client) sent a well-formed one,
else it is generated; it is returned in the response's ``X-Request-ID``, written at the
end of every log line of the request (``emailsvc.logs.ContextFormatter``) and stored in
the job record, so the worker's lines for that job carry it too. Views add the job id
with ``emailsvc.logs.bind(job=...)``.

Only these fields are logged: never bodies, query strings or headers, which may carry
addresses, message text or credentials; an address in the path (``/suppressions/{email}``)
is replaced by ``<address>``. A path that is not UTF-8 once percent-decoded cannot name
anything the service has: it is answered 400 before any view runs.
"""

import logging
import re
import time
import uuid

from pyramid.httpexceptions import HTTPBadRequest

from ..logs import current, log_context, redacted
from .errors import error_response

log = logging.getLogger("emailsvc.requests")

HEADER = "X-Request-ID"
# Short, printable and without separators: safe in a log line, a header and a Redis hash.
_WELL_FORMED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")


def request_id_of(request):
    """The id the request arrived with when it is well-formed, else a new one."""
    given = request.headers.get(HEADER, "")
    return given if _WELL_FORMED.match(given) else uuid.uuid4().hex


def logged_path(request):
    """The request's path as its log line shows it: addresses replaced."""
    try:
        return redacted(request.path)
    except UnicodeDecodeError:
        return "<a path that is not UTF-8>"


def _undecodable_path(request):
    try:
        request.path_info  # noqa: B018 - decoding it is the check
    except UnicodeDecodeError:
        return error_response(
            HTTPBadRequest, "path", "", "The URL's path is not UTF-8 once percent-decoded"
        )
    return None


def request_context_tween_factory(handler, registry):
    """A tween that gives each request its id and logs it once it has its final status."""

    def request_context_tween(request):
        started = time.monotonic()
        request.request_id = request_id_of(request)
        response = None
        with log_context(request=request.request_id):
            try:
                response = _undecodable_path(request) or handler(request)
                response.headers[HEADER] = request.request_id
                return response
            finally:
                # An exception that escapes here becomes waitress's 500.
                status = response.status_code if response is not None else 500
                log.info(
                    "%s %s %d %.1f ms",
                    request.method,
                    logged_path(request),
                    status,
                    (time.monotonic() - started) * 1000,
                    # Also on the record itself, for handlers that do not use our formatter.
                    extra={"request_id": request.request_id, "job_id": current().get("job")},
                )

    return request_context_tween
