"""The Celery worker entry point: ``celery -A emailsvc.worker worker --ini production.ini``.

``--ini`` names the same ini file the web server reads; ``EMAILSVC_*`` environment
variables override it as they do for the web server. The option is processed before any
other (it is eager), so the worker's own options (prefetch, concurrency, ...) already see
the configuration the ini gives: ``app`` below is configured once, by ``--ini``, through
the same ``assemble()`` the web process uses.
"""

import configparser
import logging.config
import os

from celery import signals
from click import Option

from .assembly import assemble
from .jobs.durability import warn_if_forgetful
from .jobs.tasks import new_celery_app
from .logs import use_format
from .metrics import start_worker_exporter
from .settings import SettingsError, from_ini

#: What ``celery -A emailsvc.worker`` finds; unconfigured until ``--ini`` is processed.
app = new_celery_app(current=True)


def _configure_from_ini(ctx, param, value):
    path = os.path.abspath(value)
    if not os.path.exists(path):
        raise SystemExit(f"emailsvc worker: no such ini file: {path}")
    celery_app = ctx.obj.app
    try:
        settings = from_ini(path)
        if celery_app.assembly is None:
            assemble(settings, celery_app=celery_app)
            celery_app.ini_file = path
    except SettingsError as exc:
        # A bad value, or a DKIM key that cannot be read: one line, no traceback.
        raise SystemExit(f"emailsvc worker: {path}: {exc}") from None
    return value


app.user_options["preload"].add(
    Option(
        ["--ini"],
        default=lambda: os.environ.get("EMAILSVC_INI", "production.ini"),
        is_eager=True,
        callback=_configure_from_ini,
        help="The emailsvc ini file (default: $EMAILSVC_INI or production.ini).",
    )
)


@signals.setup_logging.connect
def _setup_logging(loglevel=None, **kwargs):
    """Log as the ini file says (as pserve does), else to stderr at ``--loglevel``."""
    path = app.ini_file
    parser = configparser.ConfigParser()
    if path and parser.read(path) and parser.has_section("loggers"):
        logging.config.fileConfig(
            path, {"__file__": path, "here": os.path.dirname(path)}, disable_existing_loggers=False
        )
    else:
        logging.basicConfig(level=loglevel or logging.WARNING)
    if app.assembly is not None:
        use_format(app.assembly.settings["emailsvc.log_format"])


@signals.worker_init.connect
def _check_redis_persistence(sender=None, **kwargs):
    """In the worker's main process: warn once when Redis may lose what it acknowledged."""
    if app.assembly is not None:
        warn_if_forgetful(app.assembly.redis)


@signals.worker_init.connect
def _start_metrics_exporter(sender=None, **kwargs):
    """In the worker's main process: serve the counts of every pool child, when asked."""
    assembly = app.assembly
    port = assembly.settings["emailsvc.metrics.worker_port"] if assembly else 0
    if not port:
        return
    if not assembly.metrics.directory:
        # Without the folder the main process would only see its own (empty) counts.
        raise SystemExit(
            "emailsvc worker: emailsvc.metrics.worker_port needs emailsvc.metrics.dir"
        )
    start_worker_exporter(assembly.metrics, port)
