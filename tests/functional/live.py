"""The real service under waitress (``pserve``) in a subprocess, with its logs in a file."""

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from ..servers import ROOT, free_port, stop_process

LOGGING = """
[loggers]
keys = root

[handlers]
keys = file, console

[formatters]
keys = generic

[logger_root]
level = {level}
handlers = file, console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[handler_file]
class = FileHandler
args = ({log_file!r}, 'a', 'utf-8')
level = NOTSET
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)-5.5s [%(name)s][%(process)d] %(message)s
"""


def write_service_ini(path, settings, port, log_file, level="INFO", server=None):
    """Write an ini with ``settings``, a waitress server on ``port`` and logging to a file."""
    lines = ["[app:main]", "use = egg:emailsvc"]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    lines += ["", "[server:main]", "use = egg:emailsvc#waitress", "host = 127.0.0.1"]
    lines += [f"port = {port}"]
    lines += [f"{key} = {value}" for key, value in (server or {}).items()]
    text = "\n".join(lines) + "\n" + LOGGING.format(level=level, log_file=str(log_file))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


class LiveService:
    """``pserve INI`` on a free loopback port; ``url`` is its base URL once started."""

    def __init__(self, tmp_path, settings, level="INFO", server=None, env=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = tmp_path / "service.log"
        self.output_file = tmp_path / "pserve.out"
        self.ini = write_service_ini(
            tmp_path / "service.ini", settings, self.port, self.log_file, level, server
        )
        self.env = dict(os.environ, **(env or {}))
        self.process = None

    def start(self, timeout=30):
        """Start pserve and wait until the port answers HTTP."""
        pserve = os.path.join(os.path.dirname(sys.executable), "pserve")
        self.output = open(self.output_file, "wb")
        self.process = subprocess.Popen(
            [pserve, str(self.ini)],
            stdout=self.output,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=ROOT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                urllib.request.urlopen(self.url + "/__lbheartbeat__", timeout=1)  # noqa: S310
                return self
            except urllib.error.HTTPError:
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("pserve did not start:\n" + self.output_file.read_text())

    def stop(self, timeout=15):
        """Stop pserve (SIGTERM), killing it if it hangs."""
        stop_process(self.process, timeout)
        if self.process:
            self.output.close()
