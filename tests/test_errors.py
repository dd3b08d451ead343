"""Every error answer is JSON in the API's format, the unexpected ones included."""

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
