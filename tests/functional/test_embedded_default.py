"""``pserve development.ini``: the whole service with nothing else installed."""

import json
import re
import signal
import urllib.request
from email import message_from_bytes, policy

import psutil
import pytest

from tests.harness import free_port, local_command, wait_for


def http(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers), json.loads(response.read())


def started_pids(log_path):
    text = log_path.read_text(errors="replace")
    redis = re.search(r"embedded Redis started \(pid (\d+)", text)
    worker = re.search(r"embedded worker started \(pid (\d+)", text)
    ready = "ready." in text
    return (int(redis.group(1)), int(worker.group(1))) if redis and worker and ready else None


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def text(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


# In JSON, the embedded worker's lines are JSON too (it is started on the same ini).
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_pserve_development_ini_runs_everything_and_stops_everything(
    tmp_path, start_process, log_format
):
    port = free_port()
    outbox = tmp_path / "outbox"
    env = {
        "EMAILSVC_OUTBOX_DIR": str(outbox),
        "EMAILSVC_EMBEDDED_REDIS_FILE": str(tmp_path / "redis" / "data.rdb"),
        "EMAILSVC_REDIS_URL": None,
        "EMAILSVC_METRICS_DIR": str(tmp_path / "metrics"),
        "EMAILSVC_LOG_FORMAT": log_format,
    }
    command = local_command(["pserve", "development.ini", f"http_port={port}"])
    server = start_process(command, "pserve", env=env)
    log_path = server.output_path
    try:
        pids = wait_for(lambda: started_pids(log_path), timeout=60, interval=0.2)
        assert pids, log_path.read_text()
        redis_pid, worker_pid = pids
        assert wait_for(lambda: f"127.0.0.1:{port}" in log_path.read_text(), timeout=20)

        body = {
            "recipients": ["ana@example.org", {"email": "bo@example.org", "name": "Bö"}],
            "subject": "Réunion",
            "content": "Bonjour",
        }
        status, headers, job = http("POST", f"http://127.0.0.1:{port}/email", body)
        assert status == 202 and headers["Location"] == job["status_url"]
        assert job["status_url"] == f"http://127.0.0.1:{port}/email/{job['id']}"

        def finished():
            doc = http("GET", job["status_url"])[2]
            return doc if doc["status"] == "sent" else None

        assert wait_for(finished, timeout=30, interval=0.2)
        files = sorted(outbox.glob("*.eml"))
        assert len(files) == 2
        messages = [message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]
        assert sorted(m["To"].addresses[0].addr_spec for m in messages) == [
            "ana@example.org",
            "bo@example.org",
        ]
        assert all(str(m["Subject"]) == "Réunion" for m in messages)
        pool = [c.pid for c in psutil.Process(worker_pid).children(recursive=True)]
        assert pool, "the worker's prefork pool should be running"
        # The developer's view: the dashboard's URL is printed, it shows the job and the
        # mail, and /metrics counts what the embedded worker's pool sent.
        dashboard = f"http://127.0.0.1:{port}/dashboard/"
        assert f"dashboard on {dashboard}" in log_path.read_text()
        assert job["id"][:8] in text(dashboard) and "100 %" in text(dashboard)
        assert text(dashboard + "outbox/").count("Réunion") == 2
        assert "\nemailsvc_messages_sent_total 2.0\n" in text(f"http://127.0.0.1:{port}/metrics")
        if log_format == "json":
            lines = [line for line in log_path.read_text().splitlines() if line.startswith("{")]
            chunk = [json.loads(line) for line in lines if "chunk at 0: sent 2" in line]
            assert chunk and chunk[0]["job_id"] == job["id"] and chunk[0]["request_id"]
    finally:
        # shutdown(), not stop(): what pserve leaves running is what this test checks.
        server.shutdown(signal.SIGTERM, timeout=60)

    pids = [redis_pid, worker_pid, *pool]
    assert wait_for(lambda: all(gone(pid) for pid in pids), timeout=15), (
        f"left running: {[pid for pid in pids if not gone(pid)]}\n" + log_path.read_text()
    )
    assert "embedded Redis stopped" in log_path.read_text()
    # The socket is gone and the lock free (emptied, so that it names no owner).
    assert not (tmp_path / "redis" / "redis.sock").exists()
    assert (tmp_path / "redis" / "embedded.lock").read_text() == ""
