"""Fixtures: a real Redis with a key prefix per test, an SMTP server, the app, a worker."""

import uuid

import pytest
import redis
import webtest

from emailsvc import main

from .servers import SMTPServer, Worker, redis_url_for_tests, write_ini


@pytest.fixture(scope="session")
def redis_url():
    url, embedded = redis_url_for_tests()
    yield url
    if embedded is not None:
        embedded.shutdown()


@pytest.fixture(scope="session")
def session_prefix(redis_url):
    """The prefix of every key this test run writes; none may remain when it ends."""
    prefix = f"emailsvc-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    left = [key.decode() for key in client.scan_iter(match=prefix + "*", count=1000)]
    client.close()
    assert not left, f"tests left keys behind in Redis: {left[:10]}"


@pytest.fixture
def redis_prefix(redis_url, session_prefix):
    """A key prefix of this test's own; every key under it is removed afterwards."""
    prefix = f"{session_prefix}{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def smtp_server():
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(redis_url, redis_prefix, smtp_server, tmp_path):
    """Settings for one test: its own Redis prefix and queue, the test SMTP server."""
    return {
        "emailsvc.redis_url": redis_url,
        "emailsvc.redis_prefix": redis_prefix,
        "emailsvc.queue": redis_prefix + "queue",
        "emailsvc.mail.transport": "smtp",
        "emailsvc.smtp.host": "127.0.0.1",
        "emailsvc.smtp.port": str(smtp_server.port),
        "emailsvc.smtp.timeout_seconds": "10",
        "emailsvc.outbox_dir": str(tmp_path / "outbox"),
        "emailsvc.sender": "noreply@example.com",
        "emailsvc.sender_name": "Équipe emailsvc",
        "emailsvc.chunk_size": "50",
        "emailsvc.retry.initial_delay_seconds": "1",
        "emailsvc.retry.max_delay_seconds": "2",
        "emailsvc.delivery_lifetime_seconds": "6",
    }


@pytest.fixture
def app(settings):
    """The WSGI app against the real Redis, through WebTest."""
    return webtest.TestApp(main({}, **settings))


@pytest.fixture
def start_worker(settings, tmp_path):
    """Start real Celery workers reading an ini of this test's settings; stop them after."""
    workers = []

    def start(name="worker", concurrency=2):
        # Written at start, so that settings a test changed before reach the worker.
        ini = write_ini(tmp_path / f"{name}.ini", settings)
        worker = Worker(ini, tmp_path / f"{name}.log", concurrency=concurrency, name=name)
        workers.append(worker.start())
        return worker

    yield start
    for worker in workers:
        worker.stop()
