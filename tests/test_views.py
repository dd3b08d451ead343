"""POST /email and GET /email/{task_id} through the real app and a real Redis (no worker)."""

import json

import pytest
import webtest

from emailsvc import main

VALID = {"recipients": ["ana@example.org"], "subject": "Réunion", "content": "Bonjour"}


def post(app, body, status, **kwargs):
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    headers = kwargs.pop("headers", {"Content-Type": "application/json"})
    return app.post("/email", raw, headers=headers, status=status, **kwargs)


def job_keys(redis_client, prefix):
    return [k for k in redis_client.scan_iter(match=prefix + "job:*")]


def test_post_accepts_a_job_with_location_and_status_url(app):
    body = dict(VALID, recipients=["ana@example.org", {"email": "bo@example.org", "name": "Bo"}])
    response = post(app, body, 202)
    data = response.json
    assert set(data) == {"id", "status", "total", "suppressed", "status_url"}
    assert data["status"] == "queued" and data["total"] == 2 and data["suppressed"] == 0
    assert data["status_url"] == f"http://localhost/email/{data['id']}"
    assert response.headers["Location"] == data["status_url"]


def test_status_of_a_new_job_is_queued_with_consistent_counters(app):
    job = post(app, VALID, 202).json
    doc = app.get(f"/email/{job['id']}", status=200).json
    assert doc["id"] == job["id"] and doc["status"] == "queued"
    assert (doc["total"], doc["sent"], doc["failed"], doc["pending"]) == (1, 0, 0, 1)
    assert doc["created_at"].endswith("Z") and doc["finished_at"] is None
    assert doc["errors"] == []


def test_absolute_urls_follow_the_request_host_and_scheme(app):
    response = post(app, VALID, 202, extra_environ={"HTTP_HOST": "mail.example.net:8443"})
    assert response.headers["Location"].startswith("http://mail.example.net:8443/email/")


@pytest.mark.parametrize("task_id", ["0" * 32, "nope", "a" * 500, "A" * 32])
def test_unknown_or_malformed_ids_answer_404_in_cornice_format(app, task_id):
    response = app.get(f"/email/{task_id}", status=404)
    assert response.json["status"] == "error"
    assert response.json["errors"][0]["location"] == "path"


def test_each_bad_recipient_is_named_by_its_index(app, redis_client, redis_prefix):
    body = dict(VALID, recipients=["ok@example.org", "not-an-address", "a@b.org, c@d.org"])
    errors = post(app, body, 400).json["errors"]
    names = {e["name"]: e for e in errors}
    assert set(names) == {"recipients.1", "recipients.2"}
    assert all(e["location"] == "body" for e in errors)
    assert "Invalid email address" in names["recipients.1"]["description"]
    assert job_keys(redis_client, redis_prefix) == []


@pytest.mark.parametrize(
    "change, field",
    [
        ({"recipients": []}, "recipients"),
        ({"recipients": "ana@example.org"}, "recipients"),
        ({"subject": "a\r\nBcc: x@evil.org"}, "subject"),
        ({"subject": "x" * 999}, "subject"),
        ({"subject": 5}, "subject"),
        ({"content": None}, "content"),
        ({"recipients": [{"email": "a@example.org", "vars": {"to": "x"}}]}, "recipients.0"),
        ({"recipients": [{"email": "a@example.org", "vars": {"n": 1}}]}, "recipients.0"),
        ({"recipients": [{"email": "a@example.org", "name": "A\nB"}]}, "recipients.0"),
        ({"recipients": [{"mail": "a@example.org"}]}, "recipients.0"),
        ({"recipients": ["a@[127.0.0.1]"]}, "recipients.0"),
    ],
)
def test_invalid_fields_get_400_naming_the_field(app, change, field):
    errors = post(app, dict(VALID, **change), 400).json["errors"]
    assert field in {e["name"] for e in errors}


def test_missing_fields_are_each_reported(app):
    errors = post(app, {}, 400).json["errors"]
    assert {e["name"] for e in errors} == {"recipients", "subject"}


def test_a_job_without_content_or_html_is_refused_naming_content(app):
    body = {"recipients": ["a@example.org"], "subject": "Hi"}
    errors = post(app, body, 400).json["errors"]
    assert [(e["name"], e["description"]) for e in errors] == [
        ("content", "A job needs content (text), html, or both")
    ]


def test_unknown_template_names_the_available_ones(app):
    errors = post(app, dict(VALID, template="../secret"), 400).json["errors"]
    assert errors[0]["name"] == "template"
    assert "available: default" in errors[0]["description"]


def test_more_recipients_than_allowed_get_400(settings):
    app = webtest.TestApp(main({}, **dict(settings, **{"emailsvc.max_recipients": "3"})))
    body = dict(VALID, recipients=[f"r{i}@example.org" for i in range(4)])
    errors = post(app, body, 400).json["errors"]
    assert errors[0]["name"] == "recipients" and "At most 3" in errors[0]["description"]


def test_non_json_content_type_gets_415(app):
    response = post(app, "recipients=a", 415, headers={"Content-Type": "text/plain"})
    assert response.json["status"] == "error"


@pytest.mark.parametrize(
    "raw",
    [b"{", b"[]", b'"text"', b"\xff\xfe", b"[" * 100000 + b"]" * 100000, b"null", b"{}{}"],
)
def test_malformed_json_gets_400_never_500(app, raw, redis_client, redis_prefix):
    response = post(app, raw, 400)
    assert response.json["status"] == "error"
    assert job_keys(redis_client, redis_prefix) == []


def test_body_over_the_limit_gets_413(settings):
    app = webtest.TestApp(
        main(
            {},
            **dict(
                settings,
                **{"emailsvc.max_body_bytes": "2048", "emailsvc.max_attachment_bytes": "0"},
            ),
        )
    )
    body = dict(VALID, content="x" * 3000)
    response = post(app, body, 413)
    assert response.json["status"] == "error"


def test_unknown_url_gets_json_404(app):
    assert app.get("/nowhere", status=404).json["status"] == "error"


def test_redis_down_gets_503_with_retry_after(settings, redis_client, redis_prefix):
    from tests.harness import free_port

    down = dict(settings, **{"emailsvc.redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    down["emailsvc.redis_timeout_seconds"] = "0.5"
    app = webtest.TestApp(main({}, **down))
    response = post(app, VALID, 503)
    assert response.headers["Retry-After"]
    assert response.json["status"] == "error"
    assert app.get("/email/" + "a" * 32, status=503).json["status"] == "error"
