"""Size limits: request body (waitress and app), headers (waitress) and content (app)."""

import http.client
import json

import pytest
import webtest

from emailsvc import main
from emailsvc.server import apply_body_limit

VALID = {"recipients": ["ana@example.org"], "subject": "Hello", "content": "Hi"}


def test_content_over_the_limit_gets_400_with_a_clear_message(settings):
    app = webtest.TestApp(main({}, **dict(settings, **{"emailsvc.max_content_bytes": "1000"})))
    headers = {"Content-Type": "application/json"}
    # 500 two-byte characters: 1000 bytes pass, one more byte does not.
    app.post("/email", json.dumps(dict(VALID, content="é" * 500)), headers=headers, status=202)
    body = json.dumps(dict(VALID, content="é" * 500 + "x"))
    error = app.post("/email", body, headers=headers, status=400).json["errors"][0]
    assert error["name"] == "content"
    assert error["description"] == "content is larger than 1000 bytes (UTF-8)"


def test_the_default_content_limit_is_one_mebibyte(settings):
    app = main({}, **settings)
    assert app.registry.emailsvc.settings["emailsvc.max_content_bytes"] == 1024 * 1024


def test_waitress_limit_stays_above_the_apps_so_that_the_app_answers(settings):
    app = main(
        {},
        **dict(
            settings, **{"emailsvc.max_body_bytes": "8192", "emailsvc.max_attachment_bytes": "0"}
        ),
    )
    server = {}
    apply_body_limit(app, server)
    assert server["max_request_body_size"] == "16384"
    apply_body_limit(app, {"max_request_body_size": "9000"})
    for too_small in ("8192", "4096"):
        with pytest.raises(ValueError, match="must be above emailsvc.max_body_bytes"):
            apply_body_limit(app, {"max_request_body_size": too_small})


def test_production_ini_limits_are_consistent():
    from plaster import get_settings

    from emailsvc.settings import from_ini

    app_settings = from_ini("production.ini", environ={})
    server = get_settings("production.ini", "server:main")
    # waitress's limit is only the last guard, above the app's JSON 413.
    assert int(server["max_request_body_size"]) > app_settings["emailsvc.max_body_bytes"]
    assert int(server["max_request_header_size"]) <= 65536
    assert app_settings["emailsvc.max_content_bytes"] < int(server["max_request_body_size"])


@pytest.fixture
def live(settings, start_web):
    settings["emailsvc.max_body_bytes"] = "65536"
    settings["emailsvc.max_attachment_bytes"] = "32768"
    return start_web(server={"max_request_header_size": "8192"})


def request(live, body=b"", headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    try:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        connection.request("POST", "/email", body=body, headers=all_headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_live_body_over_the_limit_gets_the_apps_413_in_json(live):
    # Without nginx: waitress (limit 131072, twice the app's) hands the body to the app.
    status, body = request(live, json.dumps(dict(VALID, content="x" * 70000)).encode())
    assert status == 413
    [error] = json.loads(body)["errors"]
    assert error == {
        "location": "body",
        "name": "",
        "description": "Request body is larger than 65536 bytes",
    }


def test_live_body_over_waitress_last_guard_is_still_refused(live):
    status, _ = request(live, json.dumps(dict(VALID, content="x" * 140000)).encode())
    assert status == 413


def test_live_body_within_the_limit_is_accepted(live):
    status, body = request(live, json.dumps(dict(VALID, content="x" * 60000)).encode())
    assert status == 202, body


def test_live_headers_over_the_limit_are_refused(live):
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    try:
        connection.request("GET", "/email/" + "0" * 32, headers={"X-Padding": "x" * 10000})
        assert connection.getresponse().status == 431
    finally:
        connection.close()
