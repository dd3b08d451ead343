"""The Celery worker entry point: ``celery -A emailsvc.worker worker --ini production.ini``.

``--ini`` names the same ini file the web server reads; ``EMAILSVC_*`` environment
variables override it as they do for the web server.
"""

import configparser
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
    _logging_source["ini"] = path


_logging_source = {}


@signals.setup_logging.connect
def _setup_logging(loglevel=None, **kwargs):
    """Log as the ini file says (as pserve does), else to stderr at ``--loglevel``."""
    path = _logging_source.get("ini")
    parser = configparser.ConfigParser()
    if path and parser.read(path) and parser.has_section("loggers"):
        logging.config.fileConfig(
            path, {"__file__": path, "here": os.path.dirname(path)}, disable_existing_loggers=False
        )
    else:
        logging.basicConfig(level=loglevel or logging.WARNING)
