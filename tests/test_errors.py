"""Every error answer is JSON in the API's format, the unexpected ones included."""

import json
import logging

from emailsvc.jobs.records import JobStore


def assert_api_error(response, status):
    assert response.status_int == status
    assert response.content_type == "application/json"
    assert response.json["status"] == "error"
    assert response.json["errors"] and "description" in response.json["errors"][0]


def test_a_method_a_service_does_not_have_gets_405_in_json(app):
    for method, path in (("delete", "/email"), ("put", "/__heartbeat__"), ("post", "/spore")):
        response = getattr(app, method)(path, status=405)
        assert_api_error(response, 405)


def test_an_unexpected_exception_is_a_json_500_with_its_traceback_only_in_the_log(
    app, monkeypatch, caplog
):
    def broken(self, job_id, client):
        raise RuntimeError("Internal-marker: /srv/secret/path")

    monkeypatch.setattr(JobStore, "status", broken)
    with caplog.at_level(logging.ERROR, logger="emailsvc"):
        response = app.get("/email/" + "0" * 32, status=500)
    assert_api_error(response, 500)
    assert "Internal-marker" not in response.text and "RuntimeError" not in response.text
    assert response.headers["X-Request-ID"]
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and "Internal-marker" in str(logged[0].exc_info[1])


def test_known_error_documents_pass_through_unchanged(app):
    response = app.get("/email/unknown", status=404)
    assert response.json["errors"][0]["name"] == "task_id"


def post(app, body, status=400):
    headers = {"Content-Type": "application/json"}
    return app.post("/email", json.dumps(body), headers=headers, status=status).json["errors"]


VALID = {"recipients": ["ana@example.org"], "subject": "s", "content": "c"}


def test_unknown_fields_are_named_without_their_values(app):
    [error] = post(app, dict(VALID, body_html="<b>Secret-marker</b>", zz=1))
    assert error["description"] == 'Unknown fields: "body_html", "zz"'
    assert "Secret-marker" not in json.dumps(error)


def test_refused_values_appear_only_as_a_short_escaped_excerpt(app):
    value = {"a": "<script>" + "Secret-marker" * 50}
    [error] = post(app, dict(VALID, recipients=value))
    assert error["name"] == "recipients"
    description = error["description"]
    assert "<script>" not in description and "Secret-marker" * 2 not in description
    assert description.endswith(" is not iterable") and "…" in description
    assert len(description) < 120


def test_unknown_urls_and_ids_are_named_by_an_excerpt_only(app):
    long_path = "/<x>" + "y" * 500
    description = app.get(long_path, status=404).json["errors"][0]["description"]
    assert "<x>" not in description and len(description) < 100
    description = app.get("/email/" + "<x>" * 100, status=404).json["errors"][0]["description"]
    # 40 characters of the id, each escaped at most six characters long.
    assert "<" not in description and len(description) < 300
