"""A running service: pserve (waitress) on a free loopback port, a Celery worker, aiosmtpd."""

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
import requests

from ..servers import ROOT, Worker, free_port, wait_for

LOGGING = """
[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)-5.5s [%(name)s] %(message)s
"""


def write_service_ini(path, settings, port):
    """An ini for pserve and the worker: the test's settings, waitress behind a proxy on lo."""
    lines = ["[app:main]", "use = egg:emailsvc"]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    lines += [
        "",
        "[server:main]",
        "use = egg:emailsvc#waitress",
        "host = 127.0.0.1",
        f"port = {port}",
        # The proxy of production is played by the test itself, from loopback.
        "trusted_proxy = 127.0.0.1",
        "trusted_proxy_headers = x-forwarded-host x-forwarded-proto",
        "clear_untrusted_proxy_headers = true",
    ]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n" + LOGGING)
    return path


@dataclass
class LiveService:
    url: str
    smtp: object
    worker: Worker


def _answers(url):
    try:
        return requests.get(url + "/spore", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def live_service(settings, smtp_server, tmp_path):
    """The service as it runs in production: pserve, a worker, an SMTP server."""
    port = free_port()
    ini = write_service_ini(tmp_path / "service.ini", settings, port)
    worker = Worker(ini, tmp_path / "worker.log").start()
    log = open(tmp_path / "pserve.log", "wb")
    pserve = os.path.join(os.path.dirname(sys.executable), "pserve")
    web = subprocess.Popen([pserve, str(ini)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_for(lambda: _answers(url) or web.poll() is not None, 30) or not _answers(url):
            raise RuntimeError("pserve did not start:\n" + (tmp_path / "pserve.log").read_text())
        yield LiveService(url=url, smtp=smtp_server, worker=worker)
    finally:
        web.terminate()
        web.wait(timeout=30)
        log.close()
        worker.stop()
