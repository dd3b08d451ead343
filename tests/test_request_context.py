"""Request ids and the one log line per request: job id, request id, nothing a client sent."""

import json
import logging
import re

import pytest

from emailsvc.logs import ContextFormatter

BODY = {
    "recipients": ["ana.secret@example.org"],
    "subject": "Subject-marker",
    "content": "Content-marker",
}
LINE = re.compile(
    r"^(GET|POST|DELETE) (\S+) (\d{3}) \d+\.\d ms request=[0-9A-Za-z._:-]+( job=[0-9a-f]{32})?$"
)


@pytest.fixture
def request_lines(caplog):
    """The request log lines, as the ini files' formatter writes them."""
    caplog.set_level(logging.INFO, logger="emailsvc")
    formatter = ContextFormatter("%(message)s")

    def lines():
        return [formatter.format(r) for r in caplog.records if r.name == "emailsvc.requests"]

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
    app.delete("/email", status=405)
    lines = request_lines()
    assert [line.split()[:3] for line in lines] == [
        ["POST", "/email", "400"],
        ["POST", "/email", "415"],
        ["GET", "/nowhere", "404"],
        ["DELETE", "/email", "405"],
    ]
    assert all(LINE.match(line) for line in lines)
    logged = caplog.text
    for secret in ("ana.secret", "Subject-marker", "Content-marker", "Query-marker"):
        assert secret not in logged


def test_an_address_in_the_path_is_not_logged(app, request_lines, caplog):
    app.put("/suppressions/ana.secret@example.org", status=201)
    app.get("/suppressions/ana.secret%40example.org", status=200)
    app.get("/nowhere/ana.secret@example.org", status=404)
    lines = request_lines()
    assert [line.split()[:3] for line in lines] == [
        ["PUT", "/suppressions/<address>", "201"],
        ["GET", "/suppressions/<address>", "200"],
        ["GET", "/nowhere/<address>", "404"],
    ]
    assert "ana.secret" not in caplog.text


@pytest.mark.parametrize("path", ["/email/%ff", "/suppressions/%C3%28", "/%ff%fe?x=1"])
def test_a_path_that_is_not_utf8_is_answered_400_and_logged(app, request_lines, path):
    response = app.get(path, status=400)
    assert response.json["errors"][0]["location"] == "path"
    assert response.headers["X-Request-ID"]
    [line] = request_lines()
    assert line.startswith("GET <a path that is not UTF-8> 400 ")


def test_a_well_formed_request_id_is_kept_and_returned(app, request_lines):
    response = app.post_json("/email", BODY, headers={"X-Request-ID": "nginx-7f3a.1"}, status=202)
    assert response.headers["X-Request-ID"] == "nginx-7f3a.1"
    assert " request=nginx-7f3a.1 " in request_lines()[0]


@pytest.mark.parametrize("given", ["", "a b", "x" * 200, "id\r\nX-Evil: 1", "<script>", "é"])
def test_a_missing_or_malformed_request_id_is_replaced_by_a_new_one(app, given):
    headers = {"X-Request-ID": given} if "\n" not in given else {}
    first = app.get("/__lbheartbeat__", headers=headers, status=200).headers["X-Request-ID"]
    second = app.get("/__lbheartbeat__", headers=headers, status=200).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second != given


def test_the_job_record_keeps_the_request_id(app, redis_client, redis_prefix):
    job = app.post_json("/email", BODY, headers={"X-Request-ID": "req-42"}, status=202).json
    assert redis_client.hget(f"{redis_prefix}job:{job['id']}", "request_id") == "req-42"


def test_error_answers_carry_the_request_id_too(app):
    assert app.get("/nowhere", status=404).headers["X-Request-ID"]
    assert app.delete("/email", status=405).headers["X-Request-ID"]
