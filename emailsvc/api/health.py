"""Operations endpoints in Mozilla's Dockerflow convention.

- ``/__lbheartbeat__``: 200 while the process serves (for the load balancer).
- ``/__heartbeat__``: runs the check each component registered with
  ``config.add_heartbeat_check(name, check)``, side by side, each with a timeout; 503
  naming the failing checks.
- ``/__version__``: name, version and commit of what runs.

None of them needs credentials: load balancers and orchestrators call them.
"""

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor, wait
from importlib import metadata

from cornice import Service
from pyramid.security import NO_PERMISSION_REQUIRED

from ..checks import CheckFailed

log = logging.getLogger(__name__)

lbheartbeat = Service(
    name="lbheartbeat", path="/__lbheartbeat__", description="Is the web process serving?"
)
heartbeat = Service(
    name="heartbeat", path="/__heartbeat__", description="Can the service deliver mail?"
)
version = Service(name="version", path="/__version__", description="What is running.")


def add_heartbeat_check(config, name, check):
    """Config directive: ``check(assembly, timeout)`` becomes part of ``/__heartbeat__``.

    A check returns when the backend works and raises (``CheckFailed`` with a reason, or
    any error) when it does not.
    """
    config.registry.heartbeat_checks[name] = check


def run_checks(assembly, checks):
    """Run ``checks`` side by side; return ``{name: None or the reason it failed}``.

    Returns as soon as every check has answered, or at the timeout for those that did not.
    """
    timeout = assembly.settings["emailsvc.heartbeat.timeout_seconds"]
    executor = ThreadPoolExecutor(max_workers=max(len(checks), 1), thread_name_prefix="heartbeat")
    futures = {name: executor.submit(check, assembly, timeout) for name, check in checks.items()}
    wait(futures.values(), timeout=timeout)
    results = {}
    for name, future in futures.items():
        if not future.done():
            results[name] = f"timed out after {timeout:g} s"
            continue
        exc = future.exception()
        if exc is None:
            results[name] = None
        elif isinstance(exc, CheckFailed):
            results[name] = str(exc)
        else:
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
    results = run_checks(request.registry.emailsvc, request.registry.heartbeat_checks)
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
    return version_info(request.registry.emailsvc.settings)


def includeme(config):
    """The three endpoints, and the directive other components add their checks with."""
    config.registry.heartbeat_checks = {}
    config.add_directive("add_heartbeat_check", add_heartbeat_check)
    config.scan(__name__)
