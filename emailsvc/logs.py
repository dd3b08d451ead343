"""Logging helpers configured from the ini files."""

import logging.handlers
import os


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
