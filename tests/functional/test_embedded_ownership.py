"""Who owns the embedded Redis and worker: only the serving pserve, through a lock in var/.

Each test runs real processes: ``pserve development.ini`` (with ``--reload`` too), a second
server on the same folder, and the scripts that load the ini (proutes, pshell,
emailsvc-spore).
"""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import psutil
import pytest
import redis

from tests.harness import ROOT, free_port, local_command, wait_for

from .test_embedded_default import gone, http

BODY = {"recipients": ["ana@example.org"], "subject": "Réunion", "content": "Bonjour"}


def embedded_env(tmp_path):
    """development.ini's settings with its data folder under ``tmp_path/var``."""
    return {
        "EMAILSVC_EMBEDDED_REDIS_FILE": str(tmp_path / "var" / "redis.rdb"),
        "EMAILSVC_OUTBOX_DIR": str(tmp_path / "outbox"),
        "EMAILSVC_REDIS_URL": None,
    }


def run(command, tmp_path, stdin=None):
    """Run a script that loads the ini, to its end, in the same environment."""
    env = {key: value for key, value in os.environ.items() if key != "EMAILSVC_REDIS_URL"}
    env.update((k, v) for k, v in embedded_env(tmp_path).items() if v is not None)
    return subprocess.run(
        local_command(command),
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def lock_state(tmp_path):
    """What the lock file says about its owner ({} when free)."""
    try:
        return json.loads((tmp_path / "var" / "embedded.lock").read_text() or "{}")
    except (OSError, ValueError):
        return {}


def answers(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/__lbheartbeat__", timeout=2):
            return True
    except (OSError, urllib.error.URLError):
        return False


def redis_answers(tmp_path):
    client = redis.Redis(unix_socket_path=str(tmp_path / "var" / "redis.sock"), socket_timeout=2)
    try:
        return client.ping()
    except redis.RedisError:
        return False
    finally:
        client.close()


def job_is_sent(port):
    status, _, job = http("POST", f"http://127.0.0.1:{port}/email", BODY)
    assert status == 202

    def sent():
        return http("GET", job["status_url"])[2]["status"] == "sent"

    return wait_for(sent, timeout=30, interval=0.2)


def start_pserve(start_process, tmp_path, *args):
    """``pserve ARGS`` on development.ini's embedded default, in a process group of its own."""
    command = local_command(["pserve", *args])
    return start_process(command, "pserve", env=embedded_env(tmp_path))


def wait_until_serving(tmp_path, server, port, workers_ready=1):
    def ready():
        return (
            server.process.poll() is not None
            or "redis" in lock_state(tmp_path)
            and server.output().count(" ready.") >= workers_ready
            and answers(port)
        )

    assert wait_for(ready, 60, 0.2) and server.process.poll() is None, server.output()


@pytest.fixture
def serving(tmp_path, start_process):
    """``pserve development.ini`` with its embedded Redis and worker (stopped after)."""
    port = free_port()
    server = start_pserve(start_process, tmp_path, "development.ini", f"http_port={port}")
    wait_until_serving(tmp_path, server, port)
    return server, port


def test_a_second_server_on_the_same_folder_refuses_and_changes_nothing(tmp_path, serving):
    first, port = serving
    before = lock_state(tmp_path)
    assert before["server"] == first.process.pid

    result = run(["pserve", "development.ini", f"http_port={free_port()}"], tmp_path)
    assert result.returncode == 1
    message = f"another emailsvc server (pid {first.process.pid}) runs the embedded Redis"
    assert message in result.stderr
    assert "EMAILSVC_REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr

    # The first server's Redis, keeper and worker are untouched and still do the work.
    assert lock_state(tmp_path) == before
    assert not gone(before["redis"]) and not gone(before["keeper"])
    assert job_is_sent(port)


def test_scripts_that_load_the_ini_neither_start_nor_stop_the_servers_redis(
    tmp_path, serving, capsys
):
    _, port = serving
    before = lock_state(tmp_path)
    scripts = {
        "proutes": None,
        "pshell": "print('ping', registry.emailsvc.redis.ping())\n",
        "emailsvc-spore": None,
    }
    timings, outputs = {}, {}
    for name, stdin in scripts.items():
        started = time.monotonic()
        result = run([name, "development.ini"], tmp_path, stdin)
        timings[name] = time.monotonic() - started
        outputs[name] = result.stdout
        assert result.returncode == 0, (name, result.stderr)
        # The server's own Redis is still the one, and still answers.
        assert lock_state(tmp_path) == before, name
        assert redis_answers(tmp_path), name
    # pshell talks to the running server's Redis rather than to one of its own.
    assert "ping True" in outputs["pshell"]
    assert job_is_sent(port)
    with capsys.disabled():
        print("\n" + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items()))


def test_scripts_without_a_server_start_no_redis_and_leave_no_file(tmp_path):
    for name in ("proutes", "emailsvc-spore"):
        result = run([name, "development.ini"], tmp_path)
        assert result.returncode == 0, result.stderr
    # A Redis started even briefly would have left its lock, socket or data files here.
    assert not (tmp_path / "var").exists()


def test_reload_keeps_one_redis_and_ctrl_c_leaves_nothing_behind(tmp_path, start_process):
    port = free_port()
    server = start_pserve(
        start_process, tmp_path, "--reload", "development.ini", f"http_port={port}"
    )
    monitor = server.process
    try:
        wait_until_serving(tmp_path, server, port)
        first = lock_state(tmp_path)
        assert first["owner"] == monitor.pid and first["server"] != monitor.pid

        # A reload (what a changed file triggers): a new server, the same Redis.
        os.kill(monitor.pid, signal.SIGHUP)
        assert wait_for(lambda: lock_state(tmp_path).get("server") != first["server"], 60)
        wait_until_serving(tmp_path, server, port, workers_ready=2)
        second = lock_state(tmp_path)
        assert (second["redis"], second["keeper"]) == (first["redis"], first["keeper"])
        assert gone(first["server"])
        assert job_is_sent(port)

        processes = psutil.Process(monitor.pid).children(recursive=True)
        processes += [psutil.Process(first["keeper"]), psutil.Process(first["redis"])]
    finally:
        # Ctrl-C in the terminal: SIGINT to the whole foreground process group.
        os.killpg(monitor.pid, signal.SIGINT)
        monitor.wait(timeout=60)

    pids = [process.pid for process in processes]
    assert wait_for(lambda: all(gone(pid) for pid in pids), timeout=60), [
        process.cmdline() for process in processes if not gone(process.pid)
    ]
    assert not (tmp_path / "var" / "redis.sock").exists()
    assert lock_state(tmp_path) == {}
