"""The compose trial as the README gives it, and the web container's stop on SIGTERM.

Docker is not needed: the tests run the commands the compose file gives each container,
with the environment it gives them (the key from the README's keygen command included),
against the test Redis and SMTP server; and the web command as PID 1 of a new PID
namespace, as it runs in a container without an init.
"""

import http.client
import json
import os
import re
import shlex
import signal
import subprocess
import threading

import psutil
import pytest
from aiosmtpd.controller import Controller

from ..harness import (
    ROOT,
    RecordingHandler,
    compose,
    compose_command,
    free_port,
    local_command,
    wait_for,
)


def readme_docker_commands():
    """The shell commands of the README's "Deploying" section, in order."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    section = text[text.index("## Deploying") :]
    section = section[: section.index("\n## ", 1)]
    joined = section.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.startswith("    docker ")]


def compose_environment(service, dotenv):
    """The environment compose gives ``service``, ``${VAR:-}`` taken from ``dotenv``."""
    result = {}
    for name, value in compose()["services"][service]["environment"].items():
        result[name] = re.sub(
            r"\$\{(\w+):-([^}]*)\}", lambda m: dotenv.get(m[1], m[2]), str(value)
        )
    return result


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def test_the_readme_commands_make_a_key_and_the_stack_sends_mail_with_it(
    tmp_path, redis_url, redis_prefix, smtp_server, start_process
):
    keygen, *up = readme_docker_commands()
    assert up and up[0].startswith("docker compose -f docker/docker-compose.yml up")
    # "docker compose ... run --rm --no-deps -T web emailsvc-keygen --env trial > docker/.env"
    words = shlex.split(keygen)
    assert words[-2:] == [">", "docker/.env"]
    command = words[words.index("web") + 1 : -2]
    made = subprocess.run(local_command(command), capture_output=True, text=True, check=True)
    dotenv = dict(line.split("=", 1) for line in made.stdout.splitlines())
    key = made.stderr.splitlines()[1].strip()

    port = free_port()
    local = {
        "EMAILSVC_REDIS_URL": redis_url,
        "EMAILSVC_REDIS_PREFIX": redis_prefix,
        "EMAILSVC_QUEUE": redis_prefix + "queue",
        "EMAILSVC_SMTP_HOST": "127.0.0.1",
        "EMAILSVC_SMTP_PORT": str(smtp_server.port),
        "EMAILSVC_HTTP_HOST": "127.0.0.1",
        "EMAILSVC_LOG_FILE": str(tmp_path / "service.log"),
    }
    web = start_process(
        local_command(compose_command("web")) + [f"http_port={port}"],
        "web",
        env=dict(compose_environment("web", dotenv), **local),
    )
    worker = start_process(
        local_command(compose_command("worker")),
        "worker",
        env=dict(compose_environment("worker", dotenv), **local),
    )
    worker.wait_for_output(" ready.")
    web.wait_for_http(f"http://127.0.0.1:{port}/__lbheartbeat__")
    body = json.dumps({"recipients": ["ana@example.org"], "subject": "Trial", "content": "Hi"})
    headers = {"Content-Type": "application/json"}
    assert request(port, "POST", "/email", body, headers)[0] == 401
    status, job = request(
        port, "POST", "/email", body, dict(headers, Authorization=f"Bearer {key}")
    )
    assert status == 202, job
    assert wait_for(lambda: smtp_server.messages, timeout=30)
    [(_, recipients, message)] = smtp_server.messages
    assert recipients == ["ana@example.org"] and message["Subject"] == "Trial"


def _can_unshare():
    try:
        return subprocess.run(["unshare", "--pid", "--fork", "true"], timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class HeldHandler(RecordingHandler):
    """An SMTP server whose NOOP waits until the test releases it: a request held in flight."""

    def __init__(self):
        super().__init__()
        self.noop_seen = threading.Event()
        self.release = threading.Event()

    async def handle_NOOP(self, server, session, envelope, arg):
        import asyncio

        self.noop_seen.set()
        while not self.release.is_set():
            await asyncio.sleep(0.05)
        return "250 OK"


@pytest.fixture
def held_smtp():
    handler = HeldHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    handler.release.set()
    controller.stop()


@pytest.mark.skipif(not _can_unshare(), reason="unshare --pid needs root (or user namespaces)")
def test_the_web_command_as_pid_1_finishes_its_request_in_flight_and_exits_on_sigterm(
    tmp_path, redis_url, redis_prefix, held_smtp, start_process
):
    handler, smtp_port = held_smtp
    port = free_port()
    env = dict(
        compose_environment("web", {}),
        EMAILSVC_REDIS_URL=redis_url,
        EMAILSVC_REDIS_PREFIX=redis_prefix,
        EMAILSVC_QUEUE=redis_prefix + "queue",
        EMAILSVC_SMTP_HOST="127.0.0.1",
        EMAILSVC_SMTP_PORT=str(smtp_port),
        EMAILSVC_HTTP_HOST="127.0.0.1",
        EMAILSVC_LOG_FILE=str(tmp_path / "service.log"),
        # The relay check may wait for the held NOOP as long as the test needs.
        EMAILSVC_HEARTBEAT_TIMEOUT_SECONDS="60",
    )
    command = ["unshare", "--pid", "--fork", *local_command(compose_command("web"))]
    outer = start_process([*command, f"http_port={port}"], "web", env=env)
    outer.wait_for_http(f"http://127.0.0.1:{port}/__lbheartbeat__")
    [pserve] = psutil.Process(outer.process.pid).children()
    with open(f"/proc/{pserve.pid}/status", encoding="ascii") as handle:
        nspid = next(line for line in handle if line.startswith("NSpid:")).split()
    assert nspid[-1] == "1", "pserve is PID 1 of its namespace"

    # /__heartbeat__ checks the relay, whose NOOP is held: the request is in flight.
    answer = {}
    client = threading.Thread(
        target=lambda: answer.update(reply=request(port, "GET", "/__heartbeat__"))
    )
    client.start()
    assert handler.noop_seen.wait(timeout=30)
    pserve.send_signal(signal.SIGTERM)
    handler.release.set()
    client.join(timeout=30)

    # The request in flight got its whole answer, then the server ended by itself.
    status, document = answer["reply"]
    assert status in (200, 503) and document["checks"]["mail"] == "ok"
    pserve.wait(timeout=10)
    # unshare --fork exits with its child's status.
    assert outer.process.wait(timeout=10) == 0
