"""Logging: the context of a log line (request id, job id) and the handlers the ini files name.

A request's id and its job's id are kept in a context variable while the request (or a
worker's chunk) is handled; ``ContextFormatter`` writes them at the end of every line, so
an operator can follow one POST from the web log into the worker's log.

``emailsvc.log_format = json`` swaps every handler's formatter for ``JSONFormatter``
(``use_format``): one JSON object per line, for log shippers that index fields. The
standard library is enough for that; no extra package is needed.
"""

import contextvars
import json
import logging
import logging.handlers
import os
import re
from contextlib import contextmanager
from datetime import UTC, datetime

_context = contextvars.ContextVar("emailsvc_log_context", default=None)

# The order in which context fields are written, and their names in the line.
FIELDS = ("request", "job")

_ADDRESS = re.compile(r"[^\s<>\"',;:/]+@[^\s<>\"',;:/]+")


def redacted(text):
    """``text`` with every email address replaced, for log lines (SMTP replies and URLs
    such as ``/suppressions/{email}`` name them)."""
    return _ADDRESS.sub("<address>", text)


@contextmanager
def log_context(**fields):
    """Add ``fields`` (``request=...``, ``job=...``) to every log line written inside."""
    current = _context.get() or {}
    token = _context.set({**current, **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields):
    """Add ``fields`` to the context opened by the innermost ``log_context``.

    Outside any ``log_context`` this does nothing: there is no request or job to name.
    """
    current = _context.get()
    if current is not None:
        current.update({k: v for k, v in fields.items() if v})


def current():
    """The context fields in force, as a new dict."""
    return dict(_context.get() or {})


class ContextFormatter(logging.Formatter):
    """A formatter that ends each line with ``request=<id> job=<id>`` when they are known."""

    def format(self, record):
        """Format ``record``, then append the context of the request or job being handled.

        A record's own ``request_id`` or ``job_id`` (given as ``extra``) wins over the context.
        """
        line = super().format(record)
        fields = _context.get() or {}
        tail = []
        for name in FIELDS:
            value = getattr(record, f"{name}_id", None) or fields.get(name)
            if value:
                tail.append(f"{name}={value}")
        return f"{line} {' '.join(tail)}" if tail else line


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, process, request and job ids.

    A traceback, when there is one, goes in ``exc_info`` of the same object, so that every
    line of the log stays one parseable document.
    """

    def format(self, record):
        """Return ``record`` as one line of JSON."""
        fields = _context.get() or {}
        document = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name in FIELDS:
            value = getattr(record, f"{name}_id", None) or fields.get(name)
            if value:
                document[f"{name}_id"] = value
        if record.exc_info:
            document["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(document, ensure_ascii=False, default=str)


def use_format(name):
    """Make every handler configured so far write ``name`` (``text`` or ``json``) lines.

    The ini files configure handlers and formatters before the settings are read; the
    setting then decides, so that the web server, the worker and the embedded worker all
    follow ``emailsvc.log_format`` (and its ``EMAILSVC_LOG_FORMAT`` variable).
    """
    if name != "json":
        return
    loggers = [logging.getLogger()]
    loggers += [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    formatter = JSONFormatter()
    for logger in loggers:
        for handler in logger.handlers:
            handler.setFormatter(formatter)


class RotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A size-rotated log file whose path, size and count the environment can override.

    ``EMAILSVC_LOG_FILE``, ``EMAILSVC_LOG_MAX_BYTES`` and ``EMAILSVC_LOG_BACKUP_COUNT`` win
    over the ini's arguments; the file's folder is created when missing.
    """

    def __init__(self, filename, max_bytes=10 * 1024 * 1024, backup_count=5):
        filename = os.environ.get("EMAILSVC_LOG_FILE", filename)
        max_bytes = int(os.environ.get("EMAILSVC_LOG_MAX_BYTES", max_bytes))
        backup_count = int(os.environ.get("EMAILSVC_LOG_BACKUP_COUNT", backup_count))
        os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
        super().__init__(filename, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
