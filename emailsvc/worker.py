"""The Celery worker entry point: ``celery -A emailsvc.worker worker --ini production.ini``.

``--ini`` names the same ini file the web server reads; ``EMAILSVC_*`` environment
variables override it as they do for the web server.
"""

import logging.config
import os

from celery import signals
from click import Option

from . import settings as emailsvc_settings
from .tasks import app, configure

app.user_options["preload"].add(
    Option(
        ["--ini"],
        default=lambda: os.environ.get("EMAILSVC_INI", "production.ini"),
        help="The emailsvc ini file (default: $EMAILSVC_INI or production.ini).",
    )
)


@signals.user_preload_options.connect
def _load_ini(options, **kwargs):
    path = os.path.abspath(options["ini"])
    if not os.path.exists(path):
        raise SystemExit(f"emailsvc worker: no such ini file: {path}")
    configure(app, emailsvc_settings.from_ini(path))
    from plaster import get_loader

    get_loader(path, protocols=["wsgi"]).setup_logging(
        {"__file__": path, "here": os.path.dirname(path)}
    )


@signals.setup_logging.connect
def _keep_ini_logging(**kwargs):
    """Tell Celery that logging is configured (by the ini file) so it leaves it alone."""
    logging.getLogger(__name__).debug("logging configured from the ini file")
