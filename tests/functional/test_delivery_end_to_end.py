"""A job through the whole stack: the app, a real Redis, a real Celery worker, aiosmtpd."""

import signal
from email.utils import parsedate_to_datetime

import psutil
import webtest

from emailsvc import main
from tests.harness import post_job, wait_for, wait_job_final


def body_of(msg):
    """The text of a received message, with the wire's CRLF line ends made plain."""
    return msg.get_content().replace("\r\n", "\n")


def test_a_job_of_1000_recipients_is_delivered_exactly_once_each(app, smtp_server, start_worker):
    start_worker()
    recipients = [f"user{i}@example.org" for i in range(1000)]
    recipients[7] = {"email": "vip@example.org", "name": "Zoë Lefèvre", "vars": {"code": "42"}}
    body = {
        "recipients": recipients,
        "subject": "Réunion de lundi à 10 h",
        "content": "Bonjour ${x}",
    }
    job = post_job(app, body)

    doc = wait_job_final(app, job["id"])
    assert doc["status"] == "sent"
    assert (doc["total"], doc["sent"], doc["failed"], doc["pending"]) == (1000, 1000, 0, 0)
    assert doc["finished_at"] and doc["errors"] == []

    messages = smtp_server.messages
    assert len(messages) == 1000
    to_addresses = sorted(msg["To"].addresses[0].addr_spec for _, _, msg in messages)
    expected = sorted(r if isinstance(r, str) else r["email"] for r in recipients)
    assert to_addresses == expected
    message_ids = {msg["Message-ID"] for _, _, msg in messages}
    assert len(message_ids) == 1000
    for mail_from, rcpt_tos, msg in messages:
        assert mail_from == "noreply@example.com"
        assert rcpt_tos == [msg["To"].addresses[0].addr_spec]
        assert str(msg["Subject"]) == "Réunion de lundi à 10 h"
        assert msg["From"].addresses[0].display_name == "Équipe emailsvc"
        assert parsedate_to_datetime(msg["Date"]).utcoffset().total_seconds() == 0
        assert msg["Message-ID"].endswith("@example.com>")
        assert msg.get_content_type() == "text/plain"
        assert body_of(msg) == "Bonjour ${x}\n\n-- \nÉquipe emailsvc <noreply@example.com>\n"
    vip = next(m for _, _, m in messages if m["To"].addresses[0].addr_spec == "vip@example.org")
    assert vip["To"].addresses[0].display_name == "Zoë Lefèvre"
    assert "=?utf-8?" in vip.as_string()  # the display name travelled RFC 2047-encoded


def test_recipients_refused_with_550_fail_alone(app, smtp_server, start_worker):
    start_worker()
    recipients = [f"ok{i}@example.org" for i in range(20)]
    recipients[3] = "reject-a@example.org"
    recipients[15] = "reject-b@example.org"
    job = post_job(app, {"recipients": recipients, "subject": "Hello", "content": "Hi"})

    doc = wait_job_final(app, job["id"])
    assert doc["status"] == "partially_failed"
    assert (doc["sent"], doc["failed"], doc["pending"]) == (18, 2, 0)
    errors = sorted(doc["errors"], key=lambda e: e["recipient"])
    assert [e["recipient"] for e in errors] == ["reject-a@example.org", "reject-b@example.org"]
    assert all(e["code"] == 550 and "No such user" in e["message"] for e in errors)
    delivered = sorted(rcpt for _, rcpts, _ in smtp_server.messages for rcpt in rcpts)
    assert delivered == sorted(r for r in recipients if not r.startswith("reject"))


def test_a_job_whose_every_recipient_is_refused_ends_failed(app, smtp_server, start_worker):
    start_worker()
    job = post_job(app, {"recipients": ["reject@example.org"], "subject": "S", "content": "C"})
    doc = wait_job_final(app, job["id"])
    assert doc["status"] == "failed" and doc["failed"] == 1 and doc["errors"][0]["code"] == 550
    assert smtp_server.messages == []


def test_recipient_vars_reach_the_template_for_that_recipient_only(
    settings, smtp_server, start_worker, tmp_path
):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "hello.txt").write_text("${greeting | 'Hello'} ${name},\n${content}\n")
    settings["emailsvc.template_dir"] = str(templates)
    app = webtest.TestApp(main({}, **settings))
    start_worker()
    recipients = [
        {"email": "a@example.org", "name": "Ana", "vars": {"greeting": "Olá"}},
        {"email": "b@example.org", "name": "Bo"},
    ]
    body = {
        "recipients": recipients,
        "subject": "S",
        "content": "${greeting}",
        "template": "hello",
    }
    job = post_job(app, body)
    doc = wait_job_final(app, job["id"])
    assert doc["status"] == "sent"
    bodies = {m["To"].addresses[0].addr_spec: body_of(m) for _, _, m in smtp_server.messages}
    # The content is data, not a template: its ${greeting} arrives as written.
    assert bodies == {
        "a@example.org": "Olá Ana,\n${greeting}\n",
        "b@example.org": "Hello Bo,\n${greeting}\n",
    }


def test_transient_refusals_are_retried_then_reported(app, smtp_server, start_worker):
    start_worker()
    job = post_job(
        app, {"recipients": ["busy@example.org", "ok@example.org"], "subject": "S", "content": "C"}
    )
    doc = wait_job_final(app, job["id"], timeout=60)
    assert doc["status"] == "partially_failed" and doc["sent"] == 1
    [error] = doc["errors"]
    assert error["recipient"] == "busy@example.org" and error["code"] == 451
    assert error["message"] == "delivery lifetime ended; last error: 4.3.0 Try again later"
    # Delivered once, although its chunk ran three times (one try and two retries).
    assert [r for _, rcpts, _ in smtp_server.messages for r in rcpts] == ["ok@example.org"]


def test_a_worker_process_killed_mid_chunk_loses_no_recipient(app, smtp_server, start_worker):
    worker = start_worker(concurrency=1)
    recipients = [f"slow{i}@example.org" for i in range(30)]
    job = post_job(app, {"recipients": recipients, "subject": "S", "content": "C"})
    # Let the single pool process get into the chunk, then kill it as the OOM killer would.
    assert wait_for(lambda: len(smtp_server.messages) >= 5, timeout=30)
    [child] = psutil.Process(worker.process.pid).children()
    child.send_signal(signal.SIGKILL)

    doc = wait_job_final(app, job["id"], timeout=90)
    assert doc["status"] == "sent" and doc["sent"] == 30
    delivered = [r for _, rcpts, _ in smtp_server.messages for r in rcpts]
    assert sorted(set(delivered)) == sorted(recipients)
    # At most the one message in flight when the process died is sent twice.
    assert len(delivered) - len(set(delivered)) <= 1
