"""Bounces and complaints through the whole service: the app, a real Celery worker sending
with VERP envelope senders into aiosmtpd, and emailsvc-bounces as its own process, all on
one real Redis. The reports go to the envelope senders the messages really had."""

import os
import smtplib

import pytest

from tests.harness import free_port, local_command, post_job, wait_for, wait_job_final, write_ini

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "samples", "bounces")


@pytest.fixture
def settings(settings, tmp_path):
    """This test's settings with a bounce domain, for the app, the worker and the receiver."""
    return {
        **settings,
        "emailsvc.bounce_domain": "bounces.example.com",
        "emailsvc.unsubscribe.secret": "end-to-end-secret",
        "emailsvc.bounces.port": str(free_port()),
        "emailsvc.bounces.dead_letter_dir": str(tmp_path / "dead-letter"),
    }


def post_order(app, recipients):
    body = {"recipients": recipients, "subject": "Your order", "content": "Hello"}
    return post_job(app, body)


def report(port, rcpt, data):
    with smtplib.SMTP("127.0.0.1", int(port), timeout=10) as smtp:
        smtp.sendmail("", [rcpt], data)


def gmail_bounce():
    with open(os.path.join(SAMPLES, "gmail-550-5.1.1.eml"), "rb") as handle:
        return handle.read().replace(b"\n", b"\r\n")


def complaint(address):
    return (
        "From: fbl@isp.example\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="f"\r\n\r\n'
        "--f\r\nContent-Type: text/plain\r\n\r\nAbuse report\r\n"
        "--f\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: abuse\r\nVersion: 1\r\nOriginal-Rcpt-To: {address}\r\n--f--\r\n"
    ).encode()


def test_bounces_and_complaints_come_back_to_their_recipients_and_suppress_them(
    app, settings, smtp_server, start_worker, start_process, tmp_path
):
    start_worker()
    ini = write_ini(tmp_path / "bounces.ini", settings)
    receiver = start_process(local_command(["emailsvc-bounces", ini]), "bounces")
    receiver.wait_for_output("emailsvc-bounces listening on")
    port = settings["emailsvc.bounces.port"]

    job = post_order(app, ["ana@example.org", "bo@example.org"])["id"]
    assert wait_job_final(app, job)["status"] == "sent"
    senders = {rcpts[0]: mail_from for mail_from, rcpts, _ in smtp_server.messages}
    assert all(s.startswith("bounces+") for s in senders.values())
    assert all(s.endswith("@bounces.example.com") for s in senders.values())
    assert senders["ana@example.org"] != senders["bo@example.org"]

    # Bo's mailbox does not exist; Ana marks her message as spam; someone sends garbage.
    report(port, senders["bo@example.org"], gmail_bounce())
    report(port, senders["ana@example.org"], complaint("ana@example.org"))
    report(port, senders["ana@example.org"], b"Subject: ?\r\n\r\nnot a report\r\n")

    def suppressed(address):
        response = app.get(f"/suppressions/{address}", expect_errors=True)
        return response.json if response.status_int == 200 else None

    bo = wait_for(lambda: suppressed("bo@example.org"), 10)
    ana = wait_for(lambda: suppressed("ana@example.org"), 10)
    assert (bo["reason"], bo["job_id"]) == ("bounced", job)
    assert (ana["reason"], ana["job_id"]) == ("complained", job)
    doc = app.get(f"/email/{job}").json
    assert (doc["sent"], doc["failed"], doc["bounced"]) == (2, 0, 1)
    [error] = doc["errors"]
    assert error["recipient"] == "bo@example.org" and error["code"] == 550
    assert error["message"].startswith("bounced: 5.1.1 550-5.1.1 The email account")
    dead = wait_for(lambda: os.listdir(settings["emailsvc.bounces.dead_letter_dir"]), 10)
    assert len([name for name in dead if name.endswith(".eml")]) == 1

    # The next job sends to neither.
    before = len(smtp_server.messages)
    again = wait_job_final(app, post_order(app, ["ana@example.org", "bo@example.org"])["id"])
    assert (again["status"], again["failed"], again["suppressed"]) == ("failed", 2, 2)
    assert len(smtp_server.messages) == before
