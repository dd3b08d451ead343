"""The waitress server runner named by the ini files' ``[server:main]``.

It reads ``http_port`` from pserve's command line (``pserve development.ini
http_port=8080``) with the ini's ``port`` as the default, lets ``EMAILSVC_*`` environment
variables set the listen address and the trusted proxy, starts the embedded Redis and
worker before serving (only here: this is the serving process) and stops them after.

SIGTERM stops the server as Ctrl-C does: waitress stops accepting, finishes the requests
in flight (waitress gives them at most 5 s) and the process exits, also as PID 1 of a
container, where a signal without a handler would be ignored.
"""

import os
import signal
import sys
import threading

import waitress

from .jobs.durability import warn_if_forgetful

# Environment variables that override a waitress setting of the ini's [server:main].
ENVIRONMENT = {
    "EMAILSVC_HTTP_HOST": "host",
    "EMAILSVC_HTTP_PORT": "port",
    "EMAILSVC_HTTP_THREADS": "threads",
    "EMAILSVC_TRUSTED_PROXY": "trusted_proxy",
}

# Without a trusted proxy waitress refuses these (they would have no meaning).
_PROXY_OPTIONS = ("trusted_proxy", "trusted_proxy_count", "trusted_proxy_headers")


def server_settings(global_conf, settings, environ=None):
    """Return waitress's settings: the ini's, then the environment's, then pserve's ``http_port``.

    An empty ``EMAILSVC_TRUSTED_PROXY`` trusts no proxy: every ``X-Forwarded-*`` header is
    then dropped instead of honoured.
    """
    environ = os.environ if environ is None else environ
    result = dict(settings)
    for name, option in ENVIRONMENT.items():
        if name in environ:
            result[option] = environ[name]
    port = (global_conf or {}).get("http_port")
    if port:
        result["port"] = port
    result.setdefault("port", "6543")
    if not str(result.get("trusted_proxy") or "").strip():
        for option in _PROXY_OPTIONS:
            result.pop(option, None)
    return result


def serve(app, global_conf, **settings):
    """Serve ``app`` with waitress; ``settings`` are waitress's, from the ini."""
    options = server_settings(global_conf, settings)
    apply_body_limit(app, options)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    embedded = getattr(getattr(app, "registry", None), "emailsvc_embedded", None)
    try:
        if embedded is not None:
            from .embedded import EmbeddedError

            try:
                embedded.start()
            except EmbeddedError as exc:
                print(f"emailsvc: {exc}", file=sys.stderr, flush=True)
                # pserve turns SystemExit into status 0; this server started nothing and
                # changed nothing, so it can end at once with a failure status.
                os._exit(1)
        assembly = getattr(getattr(app, "registry", None), "emailsvc", None)
        if assembly is not None:
            warn_if_forgetful(assembly.redis)
        _announce_dashboard(app, options)
        waitress.serve(app, **options)
    finally:
        if embedded is not None:
            embedded.stop()


def _announce_dashboard(app, options):
    # The developer running make run is told where to look, next to waitress's own line.
    assembly = getattr(getattr(app, "registry", None), "emailsvc", None)
    if assembly is not None and assembly.settings["emailsvc.dashboard.enabled"]:
        host = options.get("host", "127.0.0.1")
        host = "127.0.0.1" if host in ("0.0.0.0", "", "*") else host  # noqa: S104  # nosec B104
        print(f"emailsvc: dashboard on http://{host}:{options['port']}/dashboard/", flush=True)


def _exit_on_sigterm(signum, frame):
    # waitress ends its loop on SystemExit as on KeyboardInterrupt: it closes the listening
    # socket and waits for the requests in flight before returning.
    raise SystemExit()


def apply_body_limit(app, settings):
    """Give waitress a body limit above the app's ``emailsvc.max_body_bytes``.

    The app answers 413 in the API's JSON format above its limit; waitress's own limit
    (twice the app's unless the ini sets one) stays above it as the last guard against
    huge bodies, so that clients get the app's clear answer up to there.
    """
    assembly = getattr(getattr(app, "registry", None), "emailsvc", None)
    if assembly is None:
        return
    limit = assembly.settings["emailsvc.max_body_bytes"]
    waitress_limit = int(settings.setdefault("max_request_body_size", str(2 * limit)))
    if waitress_limit <= limit:
        raise ValueError(
            f"waitress max_request_body_size ({waitress_limit}) must be above "
            f"emailsvc.max_body_bytes ({limit}): requests in between would get waitress's "
            "plain-text 413 instead of the API's"
        )
