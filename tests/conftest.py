"""Fixtures: a real Redis with a key prefix per test, an SMTP server, the app, and the
processes a test starts (web, workers, nginx), all stopped when the test ends."""

import contextlib
import uuid
from dataclasses import dataclass

import pytest
import redis
import webtest

from emailsvc import main

from .harness import (
    Process,
    RabbitVhost,
    RedisSentinelGroup,
    SMTPServer,
    free_port,
    local_command,
    nginx_command,
    rabbitmq_unavailable,
    redis_url_for_tests,
    render_nginx,
    worker_command,
    write_ini,
)


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


@pytest.fixture(scope="session")
def rabbitmq(session_prefix):
    """A RabbitMQ virtual host of this test run, deleted (with all it holds) when it ends.

    Tests give their queues names of their own (``emailsvc.queue``); Celery's shared
    exchanges and delay queues live in this virtual host only.
    """
    reason = rabbitmq_unavailable()
    if reason:
        pytest.skip(reason)
    vhost = RabbitVhost(session_prefix.replace(":", "-").rstrip("-")).create()
    yield vhost
    vhost.delete()


@pytest.fixture
def sentinel_group(tmp_path):
    """A Redis primary, a replica and a sentinel of this test's own (see RedisSentinelGroup)."""
    directory = tmp_path / "sentinel-group"
    directory.mkdir()
    group = RedisSentinelGroup(directory).start()
    yield group
    group.stop()


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
def start_process(redis_prefix, smtp_server, tmp_path):
    """Start a ``harness.Process`` writing to ``<tmp_path>/<name>.out``; stop it after the test.

    Processes stop in the reverse order of their start, before this test's Redis keys are
    removed and its SMTP server stops (hence the fixtures asked for here).
    """
    with contextlib.ExitStack() as started:

        def start(command, name, **options):
            process = Process(command, tmp_path / f"{name}.out", **options)
            started.callback(process.stop)
            return process.start()

        yield start


@pytest.fixture
def start_worker(settings, tmp_path, start_process):
    """Start real Celery workers reading an ini of this test's settings; stop them after.

    ``ini`` runs the worker on another ini instead, such as a web process's.
    """

    def start(name="worker", concurrency=2, ini=None):
        # Written at start, so that settings a test changed before reach the worker.
        if ini is None:
            ini = write_ini(tmp_path / f"{name}.ini", settings)
        worker = start_process(worker_command(ini, name, concurrency), name, ini=ini)
        worker.wait_for_output(" ready.")
        return worker

    return start


@pytest.fixture
def start_web(settings, tmp_path, start_process):
    """Start ``pserve`` on a free port with this test's settings; stop it after.

    ``server`` adds waitress options to the ini, ``env`` environment variables, ``level``
    sets the log level. Logs go to ``<name>.log`` and the process's output.
    """

    def start(name="web", server=None, env=None, level="INFO"):
        port = free_port()
        log_file = tmp_path / f"{name}.log"
        ini = write_ini(
            tmp_path / f"{name}.ini",
            settings,
            port=port,
            server=server,
            log_file=log_file,
            level=level,
        )
        url = f"http://127.0.0.1:{port}"
        command = local_command(["pserve", ini])
        web = start_process(command, name, env=env, url=url, ini=ini, log_file=log_file)
        web.wait_for_http(url + "/__lbheartbeat__")
        return web

    return start


@dataclass
class LiveService:
    """What ``live_service`` runs: ``url`` is the web process's."""

    web: Process
    worker: Process
    smtp: SMTPServer

    @property
    def url(self):
        return self.web.url


@pytest.fixture
def live_service(settings, smtp_server, start_web, start_worker):
    """The service as it runs in production: pserve, a worker on the same ini, an SMTP server."""
    # The proxy of production is played by the test itself, from loopback.
    proxy = {
        "trusted_proxy": "127.0.0.1",
        "trusted_proxy_headers": "x-forwarded-host x-forwarded-proto",
        "clear_untrusted_proxy_headers": "true",
    }
    web = start_web(server=proxy)
    return LiveService(web=web, worker=start_worker(ini=web.ini), smtp=smtp_server)


@pytest.fixture
def start_nginx(tmp_path, start_process):
    """Start nginx on the repository's template in front of ``upstream`` (``host:port``).

    It waits until the upstream's ``/__lbheartbeat__`` answers through nginx, so start the
    upstream first. Configuration and logs go under ``<tmp_path>/<name>/``.
    """

    def start(upstream, name="nginx"):
        directory = tmp_path / name
        directory.mkdir()
        port = free_port()
        conf = render_nginx(str(directory), f"127.0.0.1:{port}", upstream)
        url = f"http://127.0.0.1:{port}"
        nginx = start_process(nginx_command(directory, conf), name, url=url)
        nginx.wait_for_http(url + "/__lbheartbeat__")
        return nginx

    return start
