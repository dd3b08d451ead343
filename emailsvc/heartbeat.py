"""Operations endpoints in Mozilla's Dockerflow convention.

- ``/__lbheartbeat__``: 200 while the process serves (for the load balancer).
- ``/__heartbeat__``: checks Redis, the mail relay and the workers, each with a timeout;
  503 naming the failing checks.
- ``/__version__``: name, version and commit of what runs.

None of them needs credentials: load balancers and orchestrators call them.
"""

import json
import logging
import os
import smtplib
import ssl
import tempfile
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from importlib import metadata

from cornice import Service
from pyramid.security import NO_PERMISSION_REQUIRED

from .settings import as_bool, as_float, as_int
from .tasks import app as celery_app

log = logging.getLogger(__name__)

lbheartbeat = Service(
    name="lbheartbeat", path="/__lbheartbeat__", description="Is the web process serving?"
)
heartbeat = Service(
    name="heartbeat", path="/__heartbeat__", description="Can the service deliver mail?"
)
version = Service(name="version", path="/__version__", description="What is running.")


class CheckFailed(Exception):
    """A backend answered, but not as a working one would."""


def check_redis(settings, registry, timeout):
    """Redis answers PING (the job store and the broker are the same server)."""
    if not registry.emailsvc.store.redis.ping():
        raise CheckFailed("PING was not answered")


def check_mail(settings, registry, timeout):
    """The relay answers EHLO and NOOP; for the outbox transport, its folder is writable."""
    if settings["emailsvc.mail.transport"] == "outbox":
        directory = settings["emailsvc.outbox_dir"]
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory, prefix=".heartbeat-"):
            return
    host = settings["emailsvc.smtp.host"]
    port = as_int(settings, "emailsvc.smtp.port", minimum=1)
    if as_bool(settings, "emailsvc.smtp.ssl"):
        context = ssl.create_default_context()
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    try:
        for command in (smtp.ehlo, smtp.noop):
            code, _ = command()
            if code != 250:
                raise CheckFailed(f"the relay answered {code}")
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


def check_workers(settings, registry, timeout):
    """At least one Celery worker answers and consumes this service's queue."""
    wait = min(as_float(settings, "emailsvc.heartbeat.worker_reply_seconds"), timeout)
    replies = celery_app.control.inspect(timeout=wait).active_queues() or {}
    queue = settings["emailsvc.queue"]
    alive = [
        name
        for name, queues in replies.items()
        if any(q.get("name") == queue for q in queues or ())
    ]
    if not alive:
        raise CheckFailed(f"no worker answered within {wait:g} s")


CHECKS = {"redis": check_redis, "mail": check_mail, "workers": check_workers}


def run_checks(settings, registry, checks=None):
    """Run the checks side by side; return ``{name: None or the reason it failed}``."""
    checks = CHECKS if checks is None else checks
    timeout = as_float(settings, "emailsvc.heartbeat.timeout_seconds")
    executor = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="heartbeat")
    futures = {
        name: executor.submit(check, settings, registry, timeout) for name, check in checks.items()
    }
    results = {}
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            results[name] = None
        except FutureTimeout:
            results[name] = f"timed out after {timeout:g} s"
        except CheckFailed as exc:
            results[name] = str(exc)
        except Exception as exc:  # noqa: BLE001 - any error means the backend is not usable
            # The class name only: messages may carry internal addresses.
            results[name] = f"failed: {type(exc).__name__}"
    # A check stuck past its timeout ends with its own socket timeout; do not wait for it.
    executor.shutdown(wait=False, cancel_futures=True)
    return results


@lbheartbeat.get(permission=NO_PERMISSION_REQUIRED)
def get_lbheartbeat(request):
    """Answer 200 while the process serves requests; checks nothing else."""
    return {}


@heartbeat.get(permission=NO_PERMISSION_REQUIRED)
def get_heartbeat(request):
    """Check every backend; 200 when all work, else 503 naming the failing ones."""
    results = run_checks(request.registry.settings, request.registry)
    failing = {name: reason for name, reason in results.items() if reason}
    if failing:
        log.warning("heartbeat failing: %s", ", ".join(f"{k}: {v}" for k, v in failing.items()))
        request.response.status_code = 503
    return {
        "status": "error" if failing else "ok",
        "checks": {name: "error" if reason else "ok" for name, reason in results.items()},
        "details": failing,
    }


def version_info(settings):
    """The Dockerflow version document: version.json when present, else package and commit."""
    info = {
        "name": "emailsvc",
        "version": metadata.version("emailsvc"),
        "commit": settings["emailsvc.commit"] or "unknown",
    }
    path = settings["emailsvc.version_file"]
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        info.update({k: v for k, v in document.items() if isinstance(v, str)})
    return info


@version.get(permission=NO_PERMISSION_REQUIRED)
def get_version(request):
    """Name, version and commit of the running service (plus version.json's other fields)."""
    return version_info(request.registry.settings)
