"""One log line per request, with the job id and nothing a client sent."""

import json
import logging
import re

import pytest

BODY = {
    "recipients": ["ana.secret@example.org"],
    "subject": "Subject-marker",
    "content": "Content-marker",
}
LINE = re.compile(r"^(GET|POST) (\S+) (\d{3}) \d+\.\d ms( job=[0-9a-f]{32})?$")


@pytest.fixture
def request_lines(caplog):
    caplog.set_level(logging.INFO, logger="emailsvc")

    def lines():
        return [r.getMessage() for r in caplog.records if r.name == "emailsvc.requests"]

    return lines


def test_an_accepted_job_logs_method_path_status_duration_and_job_id(app, request_lines):
    job = app.post_json("/email", BODY, status=202).json
    app.get(f"/email/{job['id']}", status=200)
    post, get = request_lines()
    assert LINE.match(post) and post.startswith("POST /email 202 ")
    assert post.endswith(f" job={job['id']}")
    assert LINE.match(get) and get.startswith(f"GET /email/{job['id']} 200 ")
    assert get.endswith(f" job={job['id']}")


def test_errors_are_logged_with_their_status_and_no_client_data(app, request_lines, caplog):
    app.post_json("/email", dict(BODY, recipients=["not an address"]), status=400)
    app.post("/email", json.dumps(BODY), headers={"Content-Type": "text/plain"}, status=415)
    app.get("/nowhere?token=Query-marker", status=404)
    lines = request_lines()
    assert [line.split()[:3] for line in lines] == [
        ["POST", "/email", "400"],
        ["POST", "/email", "415"],
        ["GET", "/nowhere", "404"],
    ]
    assert all(LINE.match(line) for line in lines)
    logged = caplog.text
    for secret in ("ana.secret", "Subject-marker", "Content-marker", "Query-marker"):
        assert secret not in logged
