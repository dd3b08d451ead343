"""The dashboard's job pages (the list, one job) and its login."""

import hmac
import re
import time
from datetime import UTC, datetime

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config

from ..jobs.records import FINAL_STATUSES
from . import logged_in, login_required, operator_only, render

STATUSES = ("queued", "sending", "retrying", "sent", "partially_failed", "failed", "cancelled")
PAGE_SIZE = 25
REFRESH_SECONDS = 2
# Wrong keys an address may try per window before its logins are refused for the rest of it.
LOGIN_FAILURES = 10
LOGIN_WINDOW_SECONDS = 600
_JOB_ID = re.compile(r"^[0-9a-f]{32}\Z")
_CURSOR = re.compile(r"^\d{1,12}(\.\d{1,9})?\Z")


def _seconds_since(iso, until=None):
    if not iso:
        return None
    start = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    end = until if until is not None else time.time()
    return max(end - start, 0)


def age(iso):
    """How long ago ``iso`` was, for people: ``42 s``, ``5 min``, ``3 h``, ``2 d``."""
    seconds = _seconds_since(iso)
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def decorate(job):
    """Add what the pages show of a job: its bar's parts, percentage, rate and age."""
    total = job["total"] or 1
    done = job["sent"] + job["failed"]
    job["percent"] = int(100 * done / total)
    # The bar's segments, in percent of its width (SVG rectangles: no inline styles).
    job["bar"] = {
        "sent": 100 * job["sent"] / total,
        "failed": 100 * job["failed"] / total,
    }
    end = None
    if job.get("finished_at"):
        end = datetime.strptime(job["finished_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        end = end.timestamp()
    elapsed = _seconds_since(job["created_at"], end)
    job["rate"] = f"{done / elapsed:.1f}/s" if elapsed else ""
    job["age"] = age(job["created_at"])
    job["final"] = job["status"] in FINAL_STATUSES
    return job


@view_config(route_name="dashboard_jobs", request_method="GET", permission=NO_PERMISSION_REQUIRED)
@operator_only
def jobs_page(request):
    """The jobs, newest first, filtered by status, a page at a time."""
    status = request.params.get("status") or None
    if status not in (None, *STATUSES):
        status = None
    cursor = request.params.get("before") or None
    if cursor is not None and not _CURSOR.match(cursor):
        cursor = None
    jobs, next_cursor = request.registry.emailsvc.jobs.page(status, cursor, PAGE_SIZE)
    jobs = [decorate(job) for job in jobs]
    return render(
        request,
        "jobs.pt",
        jobs=jobs,
        current=status,
        statuses=STATUSES,
        next_cursor=next_cursor,
        first_page=cursor is None,
        # The first page follows new jobs; older pages stay still while one reads them.
        refresh=REFRESH_SECONDS * 2 if cursor is None else None,
    )


@view_config(route_name="dashboard_job", request_method="GET", permission=NO_PERMISSION_REQUIRED)
@operator_only
def job_page(request):
    """One job: counters, timeline, per-recipient errors; refreshes until it is final."""
    job_id = request.matchdict["job_id"]
    job = request.registry.emailsvc.jobs.detail(job_id) if _JOB_ID.match(job_id) else None
    if job is None:
        return render(request, "missing.pt", status=404, what="job", refresh=None)
    job = decorate(job)
    return render(request, "job.pt", job=job, refresh=None if job["final"] else REFRESH_SECONDS)


@view_config(route_name="dashboard_login", request_method="GET", permission=NO_PERMISSION_REQUIRED)
def login_form(request):
    """The login form (the dashboard itself when no login is needed, or already in)."""
    if not login_required(request) or logged_in(request):
        return HTTPSeeOther(request.route_url("dashboard_jobs"))
    return render(request, "login.pt", failed=False, throttled=False, refresh=None)


@view_config(
    route_name="dashboard_login",
    request_method="POST",
    require_csrf=True,
    permission=NO_PERMISSION_REQUIRED,
)
def login(request):
    """Check the operator key; on success a new session (and CSRF token) begins."""
    assembly = request.registry.emailsvc
    expected = assembly.settings["emailsvc.dashboard.operator_key"]
    given = request.POST.get("key", "")
    if not login_required(request):
        return HTTPSeeOther(request.route_url("dashboard_jobs"))
    # Guessing the key is slowed down per address (behind nginx: the client's address).
    window = int(time.time() // LOGIN_WINDOW_SECONDS)
    key = f"{assembly.jobs.prefix}dashboard:login-failures:{request.remote_addr or '-'}:{window}"
    if int(assembly.redis.get(key) or 0) >= LOGIN_FAILURES:
        response = render(
            request, "login.pt", status=429, failed=False, throttled=True, refresh=None
        )
        response.headers["Retry-After"] = str(
            LOGIN_WINDOW_SECONDS - int(time.time()) % LOGIN_WINDOW_SECONDS
        )
        return response
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        with assembly.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, LOGIN_WINDOW_SECONDS)
            pipe.execute()
        return render(request, "login.pt", status=403, failed=True, throttled=False, refresh=None)
    # A fresh session: whatever a visitor held before logging in is not carried over.
    request.session.invalidate()
    request.session["operator"] = True
    request.session.new_csrf_token()
    return HTTPSeeOther(request.route_url("dashboard_jobs"))


@view_config(
    route_name="dashboard_logout",
    request_method="POST",
    require_csrf=True,
    permission=NO_PERMISSION_REQUIRED,
)
def logout(request):
    """End the session."""
    request.session.invalidate()
    return HTTPSeeOther(request.route_url("dashboard_login"))
