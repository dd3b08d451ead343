"""One log line per request: method, path, status, duration and the job id when there is one.

Only these fields are logged: never bodies, query strings or headers, which may carry
addresses, message text or credentials.
"""

import logging
import time

log = logging.getLogger("emailsvc.requests")

_JOB_PATH = "/email/"


def job_id_of(request, response):
    """The job a request is about: the one in its URL, or the one it created (``Location``)."""
    matchdict = request.matchdict or {}
    if "task_id" in matchdict:
        return matchdict["task_id"][:64]
    location = response.headers.get("Location", "") if response is not None else ""
    if _JOB_PATH in location:
        return location.rsplit("/", 1)[-1][:64]
    return None


def request_log_tween_factory(handler, registry):
    """A tween that logs each request once it has its final status."""

    def request_log_tween(request):
        started = time.monotonic()
        response = None
        try:
            response = handler(request)
            return response
        finally:
            # An exception that escapes here becomes waitress's 500.
            status = response.status_code if response is not None else 500
            job_id = job_id_of(request, response)
            log.info(
                "%s %s %d %.1f ms%s",
                request.method,
                request.path,
                status,
                (time.monotonic() - started) * 1000,
                f" job={job_id}" if job_id else "",
            )

    return request_log_tween
