"""Flower, run as docs/OPERATIONS.md says, sees the workers and the tasks of the service."""

import json
import sys
import urllib.error
import urllib.request

import pytest

from ..harness import free_port, wait_for, worker_command, write_ini

pytest.importorskip("flower")

BODY = {"recipients": ["ana@example.org", "bo@example.org"], "subject": "s", "content": "c"}


def api(port, path):
    """A Flower API document, or None while Flower is not answering yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return json.loads(response.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None


@pytest.fixture
def flower(settings, tmp_path, start_process):
    """``celery -A emailsvc.worker flower --ini INI`` and a worker with task events, turned
    on by ``emailsvc.worker.task_events`` (as the compose file does)."""
    ini = write_ini(tmp_path / "service.ini", {**settings, "emailsvc.worker.task_events": "true"})
    worker = start_process(worker_command(ini, "flowered"), "worker", ini=ini)
    worker.wait_for_output(" ready.")
    port = free_port()
    command = [sys.executable, "-m", "celery", "-A", "emailsvc.worker", "flower"]
    command += ["--ini", str(ini), f"--port={port}", "--address=127.0.0.1"]
    # Flower 2 serves its HTTP API only with authentication, or when told it may go without
    # (as here, on loopback).
    flower = start_process(command, "flower", env={"FLOWER_UNAUTHENTICATED_API": "true"})
    return port, flower


def test_flower_shows_the_workers_and_the_tasks_of_the_service(app, flower):
    port, process = flower

    def workers():
        found = api(port, "/api/workers?refresh=1") or {}
        return [name for name in found if name.startswith("flowered-")]

    assert wait_for(workers, timeout=60, interval=0.5), process.output()

    job = app.post_json("/email", BODY, status=202).json

    def delivered():
        tasks = (api(port, "/api/tasks") or {}).values()
        return [
            task
            for task in tasks
            if task["name"] == "emailsvc.deliver_chunk"
            and task["state"] == "SUCCESS"
            and job["id"] in (task.get("args") or "")
        ]

    [task] = wait_for(delivered, timeout=60, interval=0.5)
    assert task["worker"] in workers()
