"""A full run at INFO (web under waitress, a worker, an SMTP relay with a login) leaks no
API key, no SMTP password and no message content into any log, in either log format; in
JSON, every line of the web's and the worker's logs is one JSON object, and one request
can be followed from the POST into the worker's lines."""

import json
import urllib.request
import uuid

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from emailsvc.api.auth import hash_key

from ..harness import RecordingHandler, free_port, wait_for, write_ini

API_KEY = "k3y-Th4t-mUst-n3ver-b3-l0gged-0123456789"
SMTP_PASSWORD = "pa55-Th4t-mUst-n3ver-b3-l0gged"
CONTENT = "C0ntent-That-Stays-Out-Of-Logs"
# The test relay answers 451 to "busy..." and 550 to "reject..." (tests/harness.py).
ADDRESSES_THAT_FAIL = ["busy.secret@example.org", "reject.secret@example.org"]
SUBJECT = "Subj3ct-That-Stays-Out-Of-Logs"


class PasswordChecker:
    def __init__(self):
        self.logins = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"relay-user" and auth_data.password == SMTP_PASSWORD.encode()
        self.logins.append(ok)
        return AuthResult(success=ok)


@pytest.fixture
def relay():
    handler, checker = RecordingHandler(), PasswordChecker()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=checker,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    yield handler, checker, controller.port
    controller.stop()


def call(url, body=None, key=API_KEY):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")  # noqa: S310
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_full_run_at_info_logs_no_secret_and_no_content(
    settings, relay, start_web, start_worker, log_format
):
    handler, checker, port = relay
    settings.update(
        {
            "emailsvc.log_format": log_format,
            "emailsvc.smtp.port": str(port),
            "emailsvc.smtp.username": "relay-user",
            "emailsvc.smtp.password": SMTP_PASSWORD,
            "emailsvc.require_api_key": "true",
            "emailsvc.api_keys": f"shop:{hash_key(API_KEY)}",
        }
    )
    service = start_web(level="INFO")
    # The worker reads the web's ini, so both log into its log file.
    worker = start_worker(concurrency=1, ini=service.ini)
    try:
        body = {
            "recipients": [
                {"email": "ana@example.org", "name": "Ana", "vars": {"v": CONTENT}},
                # The fault paths log too: a 451 retried until the lifetime ends, a 550.
                *ADDRESSES_THAT_FAIL,
            ],
            "subject": SUBJECT,
            "content": CONTENT,
        }
        assert call(service.url + "/email", body, key=API_KEY[:-1])[0] == 401
        status, job = call(service.url + "/email", body)
        assert status == 202, job

        def final():
            return call(job["status_url"])[1]["status"] == "partially_failed"

        # The settings' delivery lifetime is a few seconds: the 451 fails after it.
        assert wait_for(final, timeout=60)
    finally:
        worker.stop()
        service.stop()
    # One login per session: the first delivery and each retry of the 451.
    assert checker.logins and all(checker.logins) and len(handler.messages) == 1
    logs = {
        "log file": service.log_file.read_text(encoding="utf-8"),
        "pserve output": service.output_path.read_text(encoding="utf-8"),
        "worker output": worker.output(),
    }
    if log_format == "json":
        lines = logs["log file"].splitlines()
        assert lines and all(isinstance(json.loads(line), dict) for line in lines)
    # The run did log at INFO (the worker's chunk summary), so the checks below mean something.
    assert "chunk at 0: sent 1" in logs["log file"]
    assert "recipients to retry in" in logs["log file"]
    assert "delivery lifetime ended" in logs["log file"]
    addresses = ["ana@example.org", *ADDRESSES_THAT_FAIL]
    for where, text in logs.items():
        for secret in (API_KEY, API_KEY[:-1], SMTP_PASSWORD, CONTENT, SUBJECT, *addresses):
            assert secret not in text, f"{secret!r} found in the {where}"


def json_lines(path):
    """Every line of a log file, each parsed as JSON (a line that is not JSON fails)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines, f"{path} is empty"
    return [json.loads(line) for line in lines]


def test_json_logs_follow_one_request_from_the_post_into_the_worker(
    settings, smtp_server, start_web, start_worker, tmp_path
):
    settings["emailsvc.log_format"] = "json"
    web = start_web()
    worker_log = tmp_path / "worker.log"
    worker_ini = write_ini(tmp_path / "json-worker.ini", settings, log_file=worker_log)
    worker = start_worker(ini=worker_ini, concurrency=1)
    request_id = "follow-" + uuid.uuid4().hex
    body = {"recipients": ["ana@example.org"], "subject": "Hello", "content": "Hi"}
    request = urllib.request.Request(  # noqa: S310
        web.url + "/email",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Request-ID": request_id},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        job_id = json.loads(response.read())["id"]
    assert wait_for(lambda: len(smtp_server.messages) == 1, timeout=30)

    def summary_logged():
        return any(
            "chunk at 0: sent 1" in line.get("message", "") for line in json_lines(worker_log)
        )

    assert wait_for(summary_logged, timeout=10)
    worker.stop()
    web.stop()
    web_lines, worker_lines = json_lines(web.log_file), json_lines(worker_log)
    for line in web_lines + worker_lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
    post = [line for line in web_lines if line.get("request_id") == request_id]
    assert any(line["message"].startswith("POST /email 202") for line in post), web_lines
    assert all(line.get("job_id") == job_id for line in post)
    followed = [line for line in worker_lines if line.get("request_id") == request_id]
    assert any("chunk at 0: sent 1" in line["message"] for line in followed), worker_lines
    assert all(line["job_id"] == job_id for line in followed)
    assert "ana@example.org" not in web.log_file.read_text() + worker_log.read_text()
