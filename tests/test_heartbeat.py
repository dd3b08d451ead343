"""The Dockerflow endpoints against a real Redis, SMTP server and Celery worker."""

import json
import time
from types import SimpleNamespace

import webtest

from emailsvc import main
from emailsvc.api.health import run_checks

from .harness import free_port


def test_lbheartbeat_answers_200_without_checking_anything(app):
    assert app.get("/__lbheartbeat__", status=200).json == {}


def test_heartbeat_is_ok_with_redis_the_relay_and_a_worker(app, start_worker):
    start_worker()
    response = app.get("/__heartbeat__", status=200)
    assert response.json == {
        "status": "ok",
        "checks": {"redis": "ok", "mail": "ok", "workers": "ok"},
        "details": {},
    }


def test_heartbeat_names_the_workers_check_when_no_worker_consumes_the_queue(app):
    response = app.get("/__heartbeat__", status=503)
    assert response.json["status"] == "error"
    assert response.json["checks"] == {"redis": "ok", "mail": "ok", "workers": "error"}
    assert "no worker" in response.json["details"]["workers"]


def test_heartbeat_names_the_relay_when_it_does_not_answer(settings):
    settings["emailsvc.smtp.port"] = str(free_port())
    app = webtest.TestApp(main({}, **settings))
    response = app.get("/__heartbeat__", status=503)
    assert response.json["checks"]["mail"] == "error"
    assert response.json["checks"]["redis"] == "ok"
    # The reason is the error's class, not its message (which could name internal hosts).
    assert response.json["details"]["mail"] == "failed: ConnectionRefusedError"


def test_heartbeat_names_redis_when_it_does_not_answer(settings):
    settings["emailsvc.redis_url"] = f"redis://127.0.0.1:{free_port()}/0"
    settings["emailsvc.heartbeat.worker_reply_seconds"] = "0.2"
    app = webtest.TestApp(main({}, **settings))
    response = app.get("/__heartbeat__", status=503)
    assert response.json["checks"]["redis"] == "error"
    assert response.json["checks"]["mail"] == "ok"


def test_outbox_transport_is_checked_by_writing_into_its_folder(settings, tmp_path):
    settings["emailsvc.mail.transport"] = "outbox"
    settings["emailsvc.outbox_dir"] = str(tmp_path / "outbox")
    app = webtest.TestApp(main({}, **settings))
    assert app.get("/__heartbeat__", status=503).json["checks"]["mail"] == "ok"
    assert list((tmp_path / "outbox").iterdir()) == []


def test_an_outbox_folder_that_cannot_be_created_fails_the_mail_check(settings, tmp_path):
    # A folder below a regular file cannot exist, whoever runs the test (root included).
    (tmp_path / "file").write_text("")
    settings["emailsvc.mail.transport"] = "outbox"
    settings["emailsvc.outbox_dir"] = str(tmp_path / "file" / "outbox")
    app = webtest.TestApp(main({}, **settings))
    assert app.get("/__heartbeat__", status=503).json["checks"]["mail"] == "error"


def test_a_check_that_hangs_fails_at_the_timeout():
    assembly = SimpleNamespace(settings={"emailsvc.heartbeat.timeout_seconds": 0.2})
    started = time.monotonic()
    results = run_checks(assembly, {"slow": lambda *args: time.sleep(1), "fast": lambda *a: 0})
    assert results == {"slow": "timed out after 0.2 s", "fast": None}
    assert time.monotonic() - started < 0.9


def test_the_checks_end_as_soon_as_every_one_has_answered():
    assembly = SimpleNamespace(settings={"emailsvc.heartbeat.timeout_seconds": 30.0})
    started = time.monotonic()
    results = run_checks(assembly, {"a": lambda *args: time.sleep(0.1), "b": lambda *args: 0})
    assert results == {"a": None, "b": None}
    assert time.monotonic() - started < 5


def test_version_names_the_package_and_the_commit_from_the_environment(settings, monkeypatch):
    monkeypatch.setenv("EMAILSVC_COMMIT", "0123abc")
    app = webtest.TestApp(main({}, **settings))
    assert app.get("/__version__", status=200).json == {
        "name": "emailsvc",
        "version": "1.0.0",
        "commit": "0123abc",
    }


def test_version_serves_version_json_when_present(settings, tmp_path):
    path = tmp_path / "version.json"
    document = {"source": "https://example.org/emailsvc", "version": "1.2.3", "commit": "f00"}
    path.write_text(json.dumps(document))
    settings["emailsvc.version_file"] = str(path)
    app = webtest.TestApp(main({}, **settings))
    assert app.get("/__version__", status=200).json == dict(document, name="emailsvc")
