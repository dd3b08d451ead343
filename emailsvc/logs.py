"""Logging: the context of a log line (request id, job id) and the handlers the ini files name.

A request's id and its job's id are kept in a context variable while the request (or a
worker's chunk) is handled; ``ContextFormatter`` writes them at the end of every line, so
an operator can follow one POST from the web log into the worker's log.
"""

import contextvars
import logging
import logging.handlers
import os
from contextlib import contextmanager

_context = contextvars.ContextVar("emailsvc_log_context", default=None)

# The order in which context fields are written, and their names in the line.
FIELDS = ("request", "job")


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
