"""Flower, run as docs/OPERATIONS.md says, sees the workers and the tasks of the service."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from ..servers import ROOT, Worker, free_port, stop_process, wait_for, write_ini

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
def flower(settings, tmp_path):
    """``celery -A emailsvc.worker flower --ini INI`` and a worker with task events (-E)."""
    ini = write_ini(tmp_path / "service.ini", settings)
    worker = Worker(ini, tmp_path / "worker.log", name="flowered")
    worker.command.append("-E")
    worker.start()
    port = free_port()
    command = [sys.executable, "-m", "celery", "-A", "emailsvc.worker", "flower"]
    command += ["--ini", str(ini), f"--port={port}", "--address=127.0.0.1"]
    log = open(tmp_path / "flower.log", "wb")
    # Flower 2 serves its HTTP API only with authentication, or when told it may go without
    # (as here, on loopback).
    env = dict(os.environ, FLOWER_UNAUTHENTICATED_API="true")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    try:
        yield port, worker
    finally:
        stop_process(process, 30)
        log.close()
        worker.stop()


def test_flower_shows_the_workers_and_the_tasks_of_the_service(app, flower, tmp_path):
    port, worker = flower

    def workers():
        found = api(port, "/api/workers?refresh=1") or {}
        return [name for name in found if name.startswith("flowered-")]

    assert wait_for(workers, timeout=60, interval=0.5), (tmp_path / "flower.log").read_text()

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
