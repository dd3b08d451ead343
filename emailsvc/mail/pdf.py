"""Per-recipient PDF attachments: an HTML template rendered to PDF with WeasyPrint.

WeasyPrint is the optional ``pdf`` extra (``pip install emailsvc[pdf]``); without it
``pdf_renderer`` returns None and the API refuses jobs that ask for PDFs. A template never
fetches anything remote: its ``url_fetcher`` serves only files under the template folder
and ``data:`` URIs. Each PDF's rendering time and size are bounded.
"""

import gc
import logging
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

from .templates import RenderError

log = logging.getLogger(__name__)


class ResourceRefused(ValueError):
    """A template referenced a resource outside its folder (WeasyPrint skips it)."""


def pdf_renderer(templates, timeout_seconds, max_bytes):
    """A ``PDFRenderer``, or None when WeasyPrint (the pdf extra) is not installed."""
    try:
        import weasyprint
    except (ImportError, OSError) as exc:
        # OSError: the package is there but its system libraries (Pango) are not.
        log.debug("PDF attachments unavailable: %s", exc)
        return None
    return PDFRenderer(weasyprint, templates, timeout_seconds, max_bytes)


class PDFRenderer:
    """Renders an HTML template (``<name>.pt``, values escaped) to PDF bytes."""

    def __init__(self, weasyprint, templates, timeout_seconds, max_bytes):
        self.weasyprint = weasyprint
        self.templates = templates
        self.timeout = timeout_seconds
        self.max_bytes = max_bytes
        self.folder = os.path.realpath(templates.directory)
        self.fetcher_class = _folder_fetcher(weasyprint.URLFetcher)

    def render(self, name, variables):
        """The PDF of template ``name`` for ``variables``; RenderError when over a bound."""
        html = self.templates.render_html(name, variables)
        base_url = self.folder + os.sep
        with _time_limit(self.timeout):
            fetcher = self.fetcher_class(self.folder)
            document = self.weasyprint.HTML(string=html, base_url=base_url, url_fetcher=fetcher)
            data = document.write_pdf()
        if len(data) > self.max_bytes:
            raise RenderError(
                f"the PDF of template {name!r} is larger than {self.max_bytes} bytes"
            )
        return data


def _folder_fetcher(url_fetcher):
    """A subclass of WeasyPrint's ``URLFetcher`` that fetches ``data:`` URIs and the
    files under one folder, and refuses everything else (http, ftp, other files)."""

    class FolderFetcher(url_fetcher):
        def __init__(self, folder):
            super().__init__(allowed_protocols={"file", "data"}, allow_redirects=False)
            self.folder = folder

        def fetch(self, url, headers=None):
            parts = urlsplit(url)
            if parts.scheme.lower() == "file":
                path = os.path.realpath(unquote(parts.path))
                inside = os.path.commonpath([path, self.folder]) == self.folder
                if parts.netloc or not inside:
                    raise ResourceRefused("PDF templates may only load files of their folder")
            elif parts.scheme.lower() != "data":
                raise ResourceRefused("PDF templates may not load remote resources")
            return super().fetch(url, headers)

    return FolderFetcher


class _TimeUp(Exception):
    pass


@contextmanager
def _time_limit(seconds):
    """Interrupt the block after ``seconds`` (a worker's tasks run in its main thread).

    Elsewhere (a web request's thread) signals cannot be used, and the block runs unbounded
    in time; its input is bounded by the request's limits.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    deadline = time.monotonic() + seconds
    over = threading.Event()

    def time_up(signum, frame):
        if not over.is_set() and not _would_be_dropped(frame):
            raise _TimeUp()

    previous = signal.signal(signal.SIGALRM, time_up)
    # Python drops an exception raised where it cannot propagate (a garbage collector
    # callback, a ``__del__``): the timer fires again every 10 ms until one lands.
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.01)
    try:
        try:
            yield
        finally:
            over.set()
        if time.monotonic() > deadline:
            raise _TimeUp()
    except _TimeUp:
        raise RenderError(f"the PDF took longer than {seconds} s to render") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _would_be_dropped(frame):
    """Whether Python would drop an exception raised in ``frame``: inside a garbage
    collector callback or the unraisable hook (the timer then waits for its next tick)."""
    hook = sys.unraisablehook
    codes = {getattr(callback, "__code__", None) for callback in gc.callbacks}
    codes.add(getattr(getattr(hook, "func", hook), "__code__", None))
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False
