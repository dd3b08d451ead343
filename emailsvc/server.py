"""The waitress server runner named by the ini files' ``[server:main]``.

It reads ``http_port`` from pserve's command line (``pserve development.ini
http_port=8080``) with the ini's ``port`` as the default, and stops the embedded Redis
and worker when the server stops.
"""

import os

import waitress


def serve(app, global_conf, **settings):
    """Serve ``app`` with waitress; ``settings`` are waitress's, from the ini."""
    port = (global_conf or {}).get("http_port") or os.environ.get("EMAILSVC_HTTP_PORT")
    if port:
        settings["port"] = port
    settings.setdefault("port", "6543")
    apply_body_limit(app, settings)
    try:
        waitress.serve(app, **settings)
    finally:
        embedded = getattr(getattr(app, "registry", None), "emailsvc_embedded", None)
        if embedded is not None:
            embedded.stop()


def apply_body_limit(app, settings):
    """Give waitress the app's ``emailsvc.max_body_bytes`` unless the ini sets a larger limit."""
    # waitress answers 413 itself (plain text) above its limit; the app answers 413 in
    # Cornice's format above emailsvc.max_body_bytes. One limit, the app's, unless the ini
    # sets a larger one for waitress: then clients always get the app's clear answer.
    context = getattr(getattr(app, "registry", None), "emailsvc", None)
    if context is None:
        return
    limit = context.max_body_bytes
    waitress_limit = int(settings.setdefault("max_request_body_size", str(limit)))
    if waitress_limit < limit:
        raise ValueError(
            f"waitress max_request_body_size ({waitress_limit}) is below "
            f"emailsvc.max_body_bytes ({limit}): requests in between would get waitress's 413"
        )
