"""End to end on loopback: nginx -> pserve production.ini -> Redis -> two Celery workers -> SMTP.

Every component is the real one: the nginx Debian package with the repository's config,
waitress through production.ini, the test Redis, two worker processes and aiosmtpd.
"""

import http.client
import json
import os
import re
import signal
import time

import pytest

from emailsvc.api.auth import hash_key

from ..harness import compose_command, free_port, local_command, wait_for, wait_gone

RECIPIENTS = 2000
PUBLIC_HOST = "mail.example.test"
# production.ini requires API keys: the stack knows this one's hash, the client sends it.
API_KEY = "deployment-test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CHUNK_LINE = re.compile(r"job ([0-9a-f]{32}) chunk at (\d+): sent (\d+), failed (\d+)")

pytestmark = pytest.mark.skipif(
    not any(os.path.exists(p) for p in ("/usr/sbin/nginx", "/usr/bin/nginx")),
    reason="nginx is not installed (apt-get install nginx)",
)


@pytest.fixture
def stack(tmp_path, redis_url, redis_prefix, smtp_server, start_process, start_nginx):
    """nginx, the web process and two workers, configured like production."""
    web_port = free_port()
    env = {
        "EMAILSVC_REDIS_URL": redis_url,
        "EMAILSVC_REDIS_PREFIX": redis_prefix,
        "EMAILSVC_QUEUE": redis_prefix + "queue",
        "EMAILSVC_SMTP_HOST": "127.0.0.1",
        "EMAILSVC_SMTP_PORT": str(smtp_server.port),
        "EMAILSVC_SMTP_STARTTLS": "false",
        # Never used (no username), so never sent; the log test checks it never shows.
        "EMAILSVC_SMTP_PASSWORD": "Password-marker",
        "EMAILSVC_CHUNK_SIZE": "50",
        "EMAILSVC_TRUSTED_PROXY": "127.0.0.1",
        "EMAILSVC_API_KEYS": f"deploy:{hash_key(API_KEY)}",
        "EMAILSVC_HTTP_HOST": "127.0.0.1",
    }
    web_command = local_command(compose_command("web")) + [f"http_port={web_port}"]
    web = start_process(
        web_command, "web", env=dict(env, EMAILSVC_LOG_FILE=str(tmp_path / "web.log"))
    )
    workers = {
        name: start_process(
            local_command(compose_command("worker")),
            f"worker-{name}",
            env=dict(env, EMAILSVC_LOG_FILE=str(tmp_path / f"worker-{name}.log")),
        )
        for name in ("a", "b")
    }
    for worker in workers.values():
        worker.wait_for_output(" ready.")
    web.wait_for_http(f"http://127.0.0.1:{web_port}/__lbheartbeat__")
    nginx = start_nginx(f"127.0.0.1:{web_port}")
    return {
        "nginx_port": nginx.port,
        "web_port": web_port,
        "web": web,
        "workers": workers,
        "nginx": nginx,
        "everything": [web, *workers.values(), nginx],
        "logs": tmp_path,
    }


def request(port, method, path, body=None, headers=None):
    """One HTTP request; returns (status, headers, decoded JSON or text)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        raw = response.read().decode("utf-8", "replace")
        try:
            data = json.loads(raw)
        except ValueError:
            data = raw
        return response.status, dict(response.getheaders()), data
    finally:
        connection.close()


def chunk_lines(path, job_id):
    """``{offset: sent}`` from a worker's log file, for one job."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        found = [CHUNK_LINE.search(line) for line in handle]
    return {int(m[2]): int(m[3]) for m in found if m and m[1] == job_id}


def test_a_large_job_through_nginx_is_shared_by_two_workers_and_survives_one_stopping(
    stack, smtp_server
):
    port, logs = stack["nginx_port"], stack["logs"]
    processes = [p for process in stack["everything"] for p in process.tree()]
    assert len(processes) >= 7  # nginx master + worker, pserve, 2 celery mains + children

    status, _, health = request(port, "GET", "/__heartbeat__")
    assert (status, health["checks"]) == (200, {"redis": "ok", "mail": "ok", "workers": "ok"})

    recipients = [f"r{i:04d}.secret@example.net" for i in range(RECIPIENTS)]
    body = {"recipients": recipients, "subject": "Subject-marker", "content": "Content-marker"}
    started = time.monotonic()
    status, headers, job = request(
        port,
        "POST",
        "/email",
        body=json.dumps(body),
        headers={
            "Host": PUBLIC_HOST,
            "Content-Type": "application/json",
            **AUTH,
            # A client's own forwarding headers are replaced by nginx's.
            "X-Forwarded-Host": "evil.example.org",
            "X-Forwarded-Proto": "https",
        },
    )
    assert status == 202, job
    job_id = job["id"]
    assert job["status_url"] == f"http://{PUBLIC_HOST}/email/{job_id}"
    assert headers["Location"] == job["status_url"]

    # Stop worker b once it has delivered a chunk, while the job still runs.
    worker_b = stack["workers"]["b"]
    assert wait_for(lambda: chunk_lines(logs / "worker-b.log", job_id), 30)
    _, _, progress = request(
        port, "GET", f"/email/{job_id}", headers={"Host": PUBLIC_HOST, **AUTH}
    )
    assert progress["pending"] > 0, "the job finished before a worker could be stopped"
    assert worker_b.shutdown(signal.SIGTERM) == 0
    assert "Warm shutdown" in worker_b.text()

    def finished():
        return request(port, "GET", f"/email/{job_id}", headers={"Host": PUBLIC_HOST, **AUTH})[2]

    doc = wait_for(lambda: (lambda d: d if d["finished_at"] else None)(finished()), 60, 0.2)
    elapsed = time.monotonic() - started
    assert doc, finished()
    assert (doc["status"], doc["sent"], doc["failed"], doc["pending"]) == ("sent", 2000, 0, 0)

    # Every recipient received exactly one message.
    received = [rcpt for _, rcpts, _ in smtp_server.messages for rcpt in rcpts]
    assert len(received) == RECIPIENTS
    assert sorted(received) == sorted(recipients)

    # Both workers delivered part of the job, and together each chunk exactly once.
    by_worker = {name: chunk_lines(logs / f"worker-{name}.log", job_id) for name in ("a", "b")}
    assert by_worker["a"] and by_worker["b"]
    assert sum(sum(chunks.values()) for chunks in by_worker.values()) == RECIPIENTS
    print(
        f"\n{RECIPIENTS} recipients delivered in {elapsed:.1f} s; chunks per worker: "
        + ", ".join(f"{n}={len(c)}" for n, c in by_worker.items())
    )

    # A body over the limit (16 MiB: room for 10 MB of attachments in base64) is refused
    # by nginx, in the API's error format.
    too_big = b'{"recipients": ["a@example.net"], "content": "' + b"x" * (16 * 1024 * 1024)
    status, _, error = request(
        port, "POST", "/email", body=too_big + b'"}', headers={"Content-Type": "application/json"}
    )
    assert status == 413 and error["status"] == "error"
    # nginx answered: the request never reached the app (which logs before it answers).
    assert "POST /email 413" not in (logs / "web.log").read_text()

    # One request line per request, with the job; one line per chunk in the workers' logs.
    # nginx gives each request an id; it follows the POST into the workers' lines.
    request_id = {name.lower(): value for name, value in headers.items()}["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    web_log = (logs / "web.log").read_text()
    assert re.search(rf"POST /email 202 \d+\.\d ms request={request_id} job={job_id}", web_log)
    assert re.search(rf"GET /email/{job_id} 200 \d+\.\d ms request=\w+ job={job_id}", web_log)
    worker_lines = [
        line
        for name in ("a", "b")
        for line in (logs / f"worker-{name}.log").read_text().splitlines()
        if CHUNK_LINE.search(line)
    ]
    assert worker_lines and all(
        line.endswith(f" request={request_id} job={job_id}") for line in worker_lines
    )
    assert re.search(r"GET /__heartbeat__ 200 ", web_log)
    # Written by the workers' own processes, through production.ini's rotating file.
    assert "ready." in (logs / "worker-a.log").read_text()

    # No message text, address (beyond its domain) or secret at INFO, anywhere.
    everything_logged = "".join(
        path.read_text(errors="replace")
        for path in logs.rglob("*")
        if path.suffix in (".log", ".out")
    )
    for secret in ("secret@", "Subject-marker", "Content-marker", "Password-marker"):
        assert secret not in everything_logged
    # A recipient's local part alone (settings such as emailsvc.unsubscribe.secret may be
    # named in warnings: they are not a recipient's).
    assert not re.search(r"r\d{4}\.secret", everything_logged)

    # Stopping everything leaves nothing behind (shutdown(), unlike stop(), kills no leftover).
    for process in stack["everything"]:
        if process is stack["nginx"]:
            process.shutdown(signal.SIGQUIT)
        else:
            process.shutdown(signal.SIGTERM)
    assert wait_gone(processes) == []
