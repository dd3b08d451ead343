"""The waitress server runner named by the ini files' ``[server:main]``.

It reads ``http_port`` from pserve's command line (``pserve development.ini
http_port=8080``) with the ini's ``port`` as the default, lets ``EMAILSVC_*`` environment
variables set the listen address and the trusted proxy, and stops the embedded Redis
and worker when the server stops.
"""

import os

import waitress

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
    try:
        waitress.serve(app, **options)
    finally:
        embedded = getattr(getattr(app, "registry", None), "emailsvc_embedded", None)
        if embedded is not None:
            embedded.stop()


def apply_body_limit(app, settings):
    """Give waitress the app's ``emailsvc.max_body_bytes`` unless the ini sets a larger limit."""
    # waitress answers 413 itself (plain text) above its limit; the app answers 413 in
    # Cornice's format above emailsvc.max_body_bytes. One limit, the app's, unless the ini
    # sets a larger one for waitress: then clients always get the app's clear answer.
    assembly = getattr(getattr(app, "registry", None), "emailsvc", None)
    if assembly is None:
        return
    limit = assembly.settings["emailsvc.max_body_bytes"]
    waitress_limit = int(settings.setdefault("max_request_body_size", str(limit)))
    if waitress_limit < limit:
        raise ValueError(
            f"waitress max_request_body_size ({waitress_limit}) is below "
            f"emailsvc.max_body_bytes ({limit}): requests in between would get waitress's 413"
        )
