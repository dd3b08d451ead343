"""emailsvc-bounces: reports sent over SMTP on loopback, real Redis, the suppressions and
job errors that follow, and the dead-letter folder."""

import os
import smtplib
import time

import pytest

from emailsvc.assembly import assemble, assemble_bounces
from emailsvc.bounces.receiver import controller
from emailsvc.jobs.records import JobStore, new_id
from emailsvc.jobs.suppressions import SuppressionStore
from emailsvc.settings import SettingsError, load
from tests.harness import free_port, local_command, wait_for, write_ini

SAMPLES = os.path.join(os.path.dirname(__file__), "samples", "bounces")
DOMAIN = "bounces.example.com"
MESSAGE = {"subject": "Your order", "content": "Hello", "template": "default", "client": "acme"}


@pytest.fixture
def bounce_settings(settings, tmp_path):
    return {
        **settings,
        "emailsvc.bounce_domain": DOMAIN,
        "emailsvc.unsubscribe.secret": "bounce-test-secret",
        "emailsvc.bounces.host": "127.0.0.1",
        "emailsvc.bounces.port": str(free_port()),
        "emailsvc.bounces.dead_letter_dir": str(tmp_path / "dead-letter"),
    }


class Receiver:
    """The receiver's handler behind aiosmtpd on a loopback port, and what it writes to."""

    def __init__(self, settings):
        self.settings = load(settings, {})
        self.handler, self.redis = assemble_bounces(self.settings)
        actions = self.handler.actions
        self.jobs, self.suppressions, self.verp = actions.jobs, actions.suppressions, actions.verp
        self.dead_letters = self.handler.dead_letters
        self.port = settings["emailsvc.bounces.port"]


@pytest.fixture
def receiver(bounce_settings):
    receiver = Receiver({**bounce_settings, "emailsvc.bounces.max_message_bytes": "65536"})
    server = controller(receiver.handler, receiver.settings)
    server.start()
    yield receiver
    server.stop()
    receiver.redis.close()


def sent_job(jobs, *emails, copies=None):
    """A job whose recipients were all sent to; its id."""
    job = new_id()
    chunk = [{"email": e, "name": "", "vars": {}, **(copies or {})} for e in emails]
    jobs.create(job, chunk, MESSAGE, 100, time.time() + 3600, time.time() + 30)
    for index in range(len(emails)):
        jobs.record_sent(job, index)
    return job


def send(port, rcpt, data):
    """Deliver ``data`` to the receiver from the null sender, as MTAs send reports."""
    with smtplib.SMTP("127.0.0.1", int(port), timeout=10) as smtp:
        smtp.sendmail("", [rcpt], data)


def sample(name):
    with open(os.path.join(SAMPLES, name), "rb") as handle:
        return handle.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def dsn(address, action="failed", status="5.1.1", diagnostic="smtp; 550 5.1.1 No such user"):
    """A DSN as RFC 3464 writes it, for one recipient."""
    return (
        "From: MAILER-DAEMON@mx.example.net\r\nTo: someone@bounces.example.com\r\n"
        "Subject: Delivery Status Notification\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"\r\n\r\n'
        "--dsn\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--dsn\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: {diagnostic}\r\n\r\n"
        "--dsn\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: noreply@example.com\r\nTo: {address}\r\nSubject: Your order\r\n\r\n"
        "--dsn--\r\n"
    ).encode()


def arf(address):
    """An ARF complaint report (RFC 5965) about a message to ``address``."""
    return (
        "From: feedback@isp.example\r\nTo: someone@bounces.example.com\r\n"
        "Subject: FW: Your order\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="arf"\r\n\r\n'
        "--arf\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        "--arf\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: ISP-FBL/1.0\r\nVersion: 1\r\n"
        f"Original-Rcpt-To: {address}\r\n"
        "--arf\r\nContent-Type: message/rfc822\r\n\r\n"
        f"From: noreply@example.com\r\nTo: {address}\r\nSubject: Your order\r\n\r\nHello\r\n"
        "--arf--\r\n"
    ).encode()


def reason(receiver, address):
    entry = receiver.suppressions.get("acme", address)
    return entry and (entry.reason, entry.job_id)


def test_a_hard_bounce_suppresses_the_address_and_adds_the_recipients_job_error(receiver):
    job = sent_job(receiver.jobs, "ana@example.org", "bo@example.org")
    send(receiver.port, receiver.verp.address(job, 1), dsn("bo@example.org"))
    assert reason(receiver, "bo@example.org") == ("bounced", job)
    assert receiver.suppressions.get("acme", "ana@example.org") is None
    doc = receiver.jobs.status(job, "acme")
    # The outcome stays sent (written once); the error tells what came back later.
    assert (doc["status"], doc["sent"], doc["failed"], doc["bounced"]) == ("sent", 2, 0, 1)
    assert doc["errors"] == [
        {
            "recipient": "bo@example.org",
            "code": 550,
            "message": "bounced: 5.1.1 550 5.1.1 No such user",
        }
    ]
    # The same report again (a sender's retry) changes nothing more.
    send(receiver.port, receiver.verp.address(job, 1), dsn("bo@example.org"))
    doc = receiver.jobs.status(job, "acme")
    assert (len(doc["errors"]), doc["bounced"]) == (1, 1)
    assert receiver.dead_letters.files() == []
    assert receiver.jobs.report_counts() == {"hard_bounce": 2}


@pytest.mark.parametrize(
    ("name", "address", "status"),
    [
        ("postfix-dsn.eml", "bo@example.net", "5.1.1"),
        ("exchange-ndr.eml", "carol@contoso.com", "5.1.10"),
        ("gmail-550-5.1.1.eml", "nobody.here@gmail.com", "5.1.1"),
    ],
)
def test_real_world_bounces_suppress_their_recipient(receiver, name, address, status):
    job = sent_job(receiver.jobs, address)
    send(receiver.port, receiver.verp.address(job, 0), sample(name))
    assert reason(receiver, address) == ("bounced", job)
    (error,) = receiver.jobs.status(job, "acme")["errors"]
    assert error["recipient"] == address and error["code"] == 550
    assert error["message"].startswith(f"bounced: {status} 550")


def test_the_recipient_comes_from_the_token_never_from_the_returned_message(receiver):
    # The Postfix sample names bo@example.net; the token names this job's recipient.
    job = sent_job(receiver.jobs, "someone.else@example.org")
    send(receiver.port, receiver.verp.address(job, 0), sample("postfix-dsn.eml"))
    assert reason(receiver, "someone.else@example.org") == ("bounced", job)
    assert receiver.suppressions.get("acme", "bo@example.net") is None


def test_a_bounced_copy_is_suppressed_and_leaves_its_recipients_outcome(receiver):
    copies = {"cc": [{"email": "cc@example.org", "name": ""}]}
    job = sent_job(receiver.jobs, "ana@example.org", copies=copies)
    send(receiver.port, receiver.verp.address(job, 0), dsn("cc@example.org"))
    assert reason(receiver, "cc@example.org") == ("bounced", job)
    assert receiver.suppressions.get("acme", "ana@example.org") is None
    assert receiver.jobs.status(job, "acme")["errors"] == []


def test_a_complaint_suppresses_the_address_as_complained(receiver):
    job = sent_job(receiver.jobs, "ana@example.org")
    send(receiver.port, receiver.verp.address(job, 0), arf("ana@example.org"))
    assert reason(receiver, "ana@example.org") == ("complained", job)
    assert receiver.jobs.message(job)["complained"] == "1"
    assert receiver.jobs.status(job, "acme")["errors"] == []


def test_a_soft_bounce_is_counted_and_suppresses_nothing(receiver):
    job = sent_job(receiver.jobs, "ana@example.org")
    report = dsn("ana@example.org", "delayed", "4.2.2", "smtp; 452 4.2.2 Mailbox full")
    send(receiver.port, receiver.verp.address(job, 0), report)
    send(receiver.port, receiver.verp.address(job, 0), report)
    assert receiver.suppressions.get("acme", "ana@example.org") is None
    assert receiver.jobs.message(job)["soft_bounced"] == "2"
    assert receiver.jobs.status(job, "acme")["errors"] == []
    assert receiver.jobs.report_counts() == {"soft_bounce": 2}


def dead_letter(receiver):
    (path,) = receiver.dead_letters.files()
    with open(path, "rb") as handle:
        return handle.read()


def test_garbage_is_kept_in_the_dead_letter_folder(receiver):
    job = sent_job(receiver.jobs, "ana@example.org")
    send(receiver.port, receiver.verp.address(job, 0), b"\x00\xffnot mail at all\r\n")
    kept = dead_letter(receiver)
    assert kept.startswith(b"X-Emailsvc-Dead-Letter: not a delivery status or feedback report")
    assert b"not mail at all" in kept
    assert receiver.suppressions.get("acme", "ana@example.org") is None
    assert receiver.jobs.report_counts() == {"dead_letter": 1}


def test_an_out_of_office_reply_is_kept_in_the_dead_letter_folder(receiver):
    job = sent_job(receiver.jobs, "ana@example.org")
    reply = (
        "From: ana@example.org\r\nTo: x@bounces.example.com\r\nSubject: Out of office\r\n"
        "Auto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n"
    )
    send(receiver.port, receiver.verp.address(job, 0), reply.encode())
    assert b"I am away" in dead_letter(receiver)
    assert receiver.suppressions.get("acme", "ana@example.org") is None


def test_a_forged_or_altered_token_is_not_acted_on(receiver):
    job = sent_job(receiver.jobs, "ana@example.org")
    address = receiver.verp.address(job, 0)
    local, _, domain = address.partition("@")
    altered = local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + domain
    send(receiver.port, altered, dsn("ana@example.org"))
    send(receiver.port, f"bounces+{'a' * 48}@{DOMAIN}", dsn("ana@example.org"))
    assert receiver.suppressions.get("acme", "ana@example.org") is None
    assert receiver.jobs.status(job, "acme")["errors"] == []
    kept = receiver.dead_letters.files()
    assert len(kept) == 2
    with open(kept[0], "rb") as handle:
        assert b"does not verify" in handle.readline()


def test_a_report_about_an_expired_job_is_kept_in_the_dead_letter_folder(receiver):
    send(receiver.port, receiver.verp.address(new_id(), 0), dsn("ana@example.org"))
    assert b"is no longer recorded" in dead_letter(receiver)


def test_a_message_above_the_size_limit_is_refused(receiver):
    job = sent_job(receiver.jobs, "ana@example.org")
    # At MAIL FROM when the client says the SIZE (smtplib does), else after DATA.
    with pytest.raises(smtplib.SMTPResponseException) as refused:
        send(receiver.port, receiver.verp.address(job, 0), dsn("ana@example.org") + b"x" * 70_000)
    assert refused.value.smtp_code == 552
    assert receiver.suppressions.get("acme", "ana@example.org") is None


def test_rcpt_to_any_other_address_is_refused(receiver):
    for address in (f"postmaster@{DOMAIN}", "bounces+x@example.com", "ana@example.org"):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send(receiver.port, address, dsn("ana@example.org"))
        assert refused.value.recipients[address][0] == 550
    assert receiver.dead_letters.files() == []


def test_while_redis_does_not_answer_reports_are_refused_for_later_not_lost(
    bounce_settings, tmp_path
):
    down = {
        **bounce_settings,
        "emailsvc.redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "emailsvc.redis_timeout_seconds": "0.5",
    }
    receiver = Receiver(down)
    server = controller(receiver.handler, receiver.settings)
    server.start()
    try:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(receiver.port, receiver.verp.address(new_id(), 0), dsn("ana@example.org"))
        assert refused.value.smtp_code == 451
        # What needs no Redis is kept as ever; the uncounted count is only logged.
        send(receiver.port, receiver.verp.address(new_id(), 0), b"garbage\r\n")
    finally:
        server.stop()
        receiver.redis.close()
    assert len(receiver.dead_letters.files()) == 1


def test_a_report_that_breaks_its_handling_is_kept_rather_than_refused(receiver, monkeypatch):
    def broken(*args):
        raise KeyError("client")

    monkeypatch.setattr(receiver.jobs, "recipients", broken)
    job = sent_job(receiver.jobs, "ana@example.org")
    send(receiver.port, receiver.verp.address(job, 0), dsn("ana@example.org"))
    assert b"could not be handled (KeyError" in dead_letter(receiver)


def test_a_message_sent_with_its_verp_sender_bounces_back_to_its_recipient(
    receiver, bounce_settings, smtp_server
):
    # The worker's own parts, from the same settings: its envelope senders are VERP.
    assembly = assemble(load(bounce_settings, {}))
    try:
        job = new_id()
        chunk = [{"email": "ana@example.org"}, {"email": "bo@example.org"}]
        assembly.jobs.create(job, chunk, MESSAGE, 100, time.time() + 60, time.time() + 30)
        assert assembly.deliverer.deliver_chunk(job, 0, 2).sent == 2
        envelopes = {rcpts[0]: mail_from for mail_from, rcpts, _ in smtp_server.messages}
        assert envelopes["bo@example.org"].endswith("@" + DOMAIN)
        # What the remote MTA does: a DSN to the envelope sender of bo's message.
        send(receiver.port, envelopes["bo@example.org"], sample("postfix-dsn.eml"))
        assert reason(receiver, "bo@example.org") == ("bounced", job)
        assert assembly.jobs.status(job, "acme")["bounced"] == 1
        # The next job of the client sends nothing to the bounced address.
        again = new_id()
        assembly.jobs.create(again, chunk, MESSAGE, 100, time.time() + 60, time.time() + 30)
        assert assembly.deliverer.deliver_chunk(again, 0, 2).sent == 1
        assert assembly.jobs.status(again, "acme")["errors"] == [
            {"recipient": "bo@example.org", "code": None, "message": "suppressed: bounced"}
        ]
    finally:
        assembly.close()


def test_without_a_bounce_domain_nothing_is_verp_and_the_receiver_will_not_start(settings):
    assembly = assemble(load(settings, {}))
    try:
        assert assembly.verp is None and assembly.deliverer.verp is None
    finally:
        assembly.close()
    with pytest.raises(SettingsError, match="emailsvc.bounce_domain"):
        assemble_bounces(load(settings, {}))


def test_emailsvc_bounces_runs_as_its_own_process(
    bounce_settings, redis_client, redis_prefix, start_process, tmp_path
):
    ini = write_ini(tmp_path / "bounces.ini", bounce_settings)
    process = start_process(local_command(["emailsvc-bounces", ini]), "bounces")
    process.wait_for_output("emailsvc-bounces listening on")
    store = JobStore(redis_client, redis_prefix, 60)
    job = sent_job(store, "nobody.here@gmail.com")
    receiver = Receiver(bounce_settings)
    try:
        send(receiver.port, receiver.verp.address(job, 0), sample("gmail-550-5.1.1.eml"))
    finally:
        receiver.redis.close()
    suppressions = SuppressionStore(redis_client, redis_prefix)
    entry = wait_for(lambda: suppressions.get("acme", "nobody.here@gmail.com"), 10)
    assert (entry.reason, entry.job_id) == ("bounced", job)
    assert process.stop() == 0
    assert "emailsvc-bounces stopped" in process.output()


def test_the_console_script_says_its_usage_and_what_it_needs(capsys, monkeypatch):
    from emailsvc.cli.bounces import main

    assert main(["--help"]) == 2
    assert "usage: emailsvc-bounces [INI]" in capsys.readouterr().err
    monkeypatch.delenv("EMAILSVC_BOUNCE_DOMAIN", raising=False)
    assert main([]) == 2
    assert "needs emailsvc.bounce_domain" in capsys.readouterr().err
