"""The fault-injection rig: a Redis of the test's own (AOF on) and a relay it can script.

Every fault test runs real processes: this Redis (killed with SIGKILL and restarted on its
append-only file), prefork Celery workers and the web server started through the
harness, and an aiosmtpd relay whose behaviour the test changes while a job runs.
Timings are shortened (leases, the watchdog, retries) so that faults play out in seconds.
"""

import asyncio
import email
import re
import signal
import subprocess
import threading
import time
from email import policy

import pytest
import redis
from aiosmtpd.controller import Controller

from ..harness import free_port, offer_pipelining, wait_for

ADDRESS = re.compile(r"[\w.+-]+@(example\.org|example\.net)")


class AofRedis:
    """``redis-server`` with ``appendonly yes`` in a folder of the test's own."""

    def __init__(self, directory):
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        """Start (or restart) the server on its folder and port; wait until it answers."""
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.directory), "--appendonly", "yes"]
        # "always", as deployed: with "everysec" a SIGKILL can take writes Redis had
        # acknowledged (it postpones writing the AOF while a background fsync runs), and the
        # fault would go beyond what G1 promises (docs/RELIABILITY.md, Deploying).
        command += ["--appendfsync", "always", "--save", "", "--maxmemory-policy", "noeviction"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)

        def answers():
            try:
                return client.ping()
            except redis.RedisError:
                return False

        if not wait_for(answers, 20, interval=0.05):
            raise RuntimeError("redis-server did not start")
        client.close()
        return self

    def kill(self):
        """SIGKILL the server: no shutdown, no final save; what the AOF holds survives."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        """Stop the server for good."""
        if self.process and self.process.poll() is None:
            self.kill()


class ScriptableRelay:
    """An SMTP relay on a fixed port whose behaviour a test changes while a job runs.

    ``mode``: ``"accept"``; ``"421"`` (every RCPT answered 421); ``stall_dot`` makes the
    next N messages wait ``stall_seconds`` after the final dot before their 250, past the
    client's timeout; ``delay`` slows every message. ``down()``/``up()`` stop and restart it.
    """

    def __init__(self):
        self.port = free_port()
        self.mode = "accept"
        self.delay = 0.0
        self.stall_dot = 0
        self.stall_seconds = 0.0
        self.received = []
        self.lock = threading.Lock()
        self.controller = None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname  # what aiosmtpd leaves to this hook
        return offer_pipelining(responses)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.mode == "421":
            return "421 4.3.2 Service not available, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        stall = False
        with self.lock:
            if self.stall_dot > 0:
                self.stall_dot -= 1
                stall = True
        msg = email.message_from_bytes(envelope.original_content, policy=policy.default)
        with self.lock:
            # Kept as soon as the data is complete: a real relay has it queued by now.
            self.received.append((list(envelope.rcpt_tos), msg["Message-ID"], time.monotonic()))
        if stall:
            await asyncio.sleep(self.stall_seconds)
        return "250 Message accepted for delivery"

    def up(self):
        """Listen (again) on the relay's port."""
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def down(self):
        """Stop listening: connections are refused."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def delivered(self):
        """Every recipient received, with repeats, in order."""
        with self.lock:
            return [rcpt for rcpts, _, _ in self.received for rcpt in rcpts]

    def message_ids(self, recipient):
        """The Message-IDs of every copy ``recipient`` received."""
        with self.lock:
            return [mid for rcpts, mid, _ in self.received if recipient in rcpts]

    def arrivals(self):
        """``(recipient, time.monotonic() when its message was complete)``, in order."""
        with self.lock:
            return [(rcpt, at) for rcpts, _, at in self.received for rcpt in rcpts]


@pytest.fixture
def aof_redis(tmp_path):
    """A Redis with AOF that the test may kill and restart."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = AofRedis(directory).start()
    yield server
    server.stop()


@pytest.fixture
def relay():
    """The scriptable relay, listening."""
    server = ScriptableRelay().up()
    yield server
    server.down()


@pytest.fixture
def settings(aof_redis, relay, redis_prefix, tmp_path):
    """Settings for a fault test: its own Redis and relay, every delay shortened."""
    return {
        "emailsvc.redis_url": aof_redis.url,
        "emailsvc.redis_prefix": redis_prefix,
        "emailsvc.redis_timeout_seconds": "2",
        "emailsvc.queue": redis_prefix + "queue",
        "emailsvc.mail.transport": "smtp",
        "emailsvc.smtp.host": "127.0.0.1",
        "emailsvc.smtp.port": str(relay.port),
        # Not shorter: on a loaded machine a slow 250 after the final dot would add the
        # duplicates of a timeout fault to the fault a test injects.
        "emailsvc.smtp.timeout_seconds": "5",
        "emailsvc.sender": "noreply@example.com",
        "emailsvc.chunk_size": "50",
        "emailsvc.job_ttl_seconds": "600",
        "emailsvc.lease_seconds": "3",
        "emailsvc.scheduler.interval_seconds": "0.2",
        "emailsvc.watchdog.interval_seconds": "0.5",
        "emailsvc.watchdog.stall_seconds": "2",
        "emailsvc.retry.initial_delay_seconds": "0.5",
        "emailsvc.retry.backoff_factor": "2",
        "emailsvc.retry.max_delay_seconds": "2",
        "emailsvc.delivery_lifetime_seconds": "120",
        "emailsvc.limit.requests_per_minute": "0",
        "emailsvc.limit.recipients_per_hour": "0",
        "emailsvc.outbox_dir": str(tmp_path / "outbox"),
    }


def assert_no_address(*texts):
    """No log carries a recipient's address (at INFO and above: the logs are at INFO)."""
    for text in texts:
        found = ADDRESS.search(text)
        assert not found, f"an address was logged: {found.group(0)!r}"


def wait_final(status, timeout):
    """Poll ``status()`` until the job is final; return the last document."""
    final = ("sent", "partially_failed", "failed", "cancelled")
    deadline = time.monotonic() + timeout
    doc = status()
    while doc["status"] not in final and time.monotonic() < deadline:
        time.sleep(0.2)
        doc = status()
    return doc
