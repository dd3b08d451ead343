"""Web and worker say at start when their Redis may lose writes it acknowledged."""

import subprocess

import pytest
import redis

from emailsvc.jobs.durability import persistence_problem

from .harness import free_port, wait_for


@pytest.fixture
def redis_server(tmp_path):
    """``start(*options)``: a ``redis-server`` of the test's own; ``(client, url)``."""
    started = []

    def start(*options):
        port = free_port()
        folder = tmp_path / f"redis-{port}"
        folder.mkdir()
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        command += ["--dir", str(folder), "--save", "", *options]
        started.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        client = redis.Redis(port=port, decode_responses=True)

        def answers():
            try:
                return client.ping()
            except redis.RedisError:
                return False

        assert wait_for(answers, 20, interval=0.05)
        return client, f"redis://127.0.0.1:{port}/0"

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_a_redis_without_its_append_only_file_is_named(redis_server):
    client, _ = redis_server("--appendonly", "no")
    assert "appendonly is off" in persistence_problem(client)


def test_everysec_is_named_for_the_writes_it_can_lose(redis_server):
    client, _ = redis_server("--appendonly", "yes", "--appendfsync", "everysec")
    assert "appendfsync is everysec" in persistence_problem(client)


def test_always_is_what_a_202_needs(redis_server):
    client, _ = redis_server("--appendonly", "yes", "--appendfsync", "always")
    assert persistence_problem(client) is None


def test_a_redis_that_cannot_be_asked_is_not_a_problem_of_persistence():
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
    assert persistence_problem(client) is None


def test_worker_and_web_warn_about_everysec_at_start(
    redis_server, settings, start_worker, start_web
):
    _, url = redis_server("--appendonly", "yes", "--appendfsync", "everysec")
    settings["emailsvc.redis_url"] = url
    worker = start_worker()
    web = start_web()
    for process in (worker, web):
        assert wait_for(lambda p=process: "appendfsync is everysec" in p.output(), 10)


def test_no_warning_when_redis_keeps_what_it_acknowledged(
    redis_server, settings, start_worker, start_web
):
    _, url = redis_server("--appendonly", "yes", "--appendfsync", "always")
    settings["emailsvc.redis_url"] = url
    worker = start_worker()
    web = start_web()
    web.wait_for_http(web.url + "/__lbheartbeat__")
    for process in (worker, web):
        assert "appendfsync" not in process.output()
        assert "appendonly" not in process.output()
