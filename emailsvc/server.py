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
    try:
        waitress.serve(app, **settings)
    finally:
        embedded = getattr(getattr(app, "registry", None), "emailsvc_embedded", None)
        if embedded is not None:
            embedded.stop()
