"""One chunk through Deliverer: real Redis, real SMTP server, no broker."""

import threading
import time

import pytest
import redis

from emailsvc.jobs.delivery import Deliverer
from emailsvc.jobs.records import JobStore, new_id
from emailsvc.jobs.suppressions import SuppressionStore
from emailsvc.mail.compose import dump_content
from emailsvc.mail.messages import sender_address
from emailsvc.mail.templates import Templates
from emailsvc.mail.transports import SMTPTransport
from emailsvc.mail.verp import VerpAddresses, VerpTokens
from emailsvc.settings import load
from tests.harness import free_port

MESSAGE = {"subject": "Hello", "content": "Body", "template": "default", "client": "acme"}


@pytest.fixture
def make_deliverer(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = JobStore(client, redis_prefix, 60)

    def make(port, connections=1):
        settings = load({"emailsvc.smtp.host": "127.0.0.1", "emailsvc.smtp.port": port}, {})
        sender = sender_address(settings["emailsvc.sender"], settings["emailsvc.sender_name"])
        transport = SMTPTransport(settings)
        return Deliverer(store, Templates(), transport, sender, connections=connections)

    yield make
    client.close()


def recipients(*emails):
    return [{"email": e, "name": "", "vars": {}} for e in emails]


def create(store, chunk, message=MESSAGE, chunk_size=100):
    """A job of these recipients; its id."""
    job = new_id()
    store.create(job, chunk, message, chunk_size, time.time() + 3600, time.time() + 30)
    return job


def test_a_redelivered_chunk_skips_recipients_already_recorded(make_deliverer, smtp_server):
    deliverer = make_deliverer(smtp_server.port)
    job = create(deliverer.store, recipients("a@example.org", "b@example.org", "c@example.org"))
    deliverer.store.record_sent(job, 0)
    assert deliverer.deliver_chunk(job, 0, 3).sent == 2
    assert [r for _, rcpts, _ in smtp_server.messages for r in rcpts] == [
        "b@example.org",
        "c@example.org",
    ]
    again = deliverer.deliver_chunk(job, 0, 3)  # a third run sends nothing more
    assert (again.sent, again.failed, again.transient, again.gone) == (0, 0, [], True)
    assert len(smtp_server.messages) == 2
    assert deliverer.store.status(job, "acme")["status"] == "sent"


def test_offsets_place_a_chunk_inside_the_job(make_deliverer, smtp_server):
    deliverer = make_deliverer(smtp_server.port)
    emails = ("a@example.org", "b@example.org", "c@example.org", "reject@example.org")
    job = create(deliverer.store, recipients(*emails), chunk_size=2)
    deliverer.deliver_chunk(job, 2, 2)
    doc = deliverer.store.status(job, "acme")
    assert (doc["sent"], doc["failed"], doc["pending"]) == (1, 1, 2)
    assert deliverer.store.done_indexes(job, [0, 1, 2, 3]) == {2, 3}
    assert sorted(deliverer.store.chunk_states(job)[0]) == [0]  # chunk 2 is done


def test_every_attempt_at_a_recipient_carries_the_same_message_id(make_deliverer, smtp_server):
    deliverer = make_deliverer(smtp_server.port)
    job = create(deliverer.store, recipients("a@example.org", "b@example.org"))
    deliverer.deliver_chunk(job, 0, 2)
    ids = [msg["Message-ID"] for _, _, msg in smtp_server.messages]
    # Derived from the job and the recipient only: a copy sent again carries the same.
    assert ids == [f"<{job}.0@localhost>", f"<{job}.1@localhost>"]


def test_transient_refusals_are_returned_for_retry_and_not_recorded(make_deliverer, smtp_server):
    deliverer = make_deliverer(smtp_server.port)
    job = create(deliverer.store, recipients("busy@example.org", "ok@example.org"))
    result = deliverer.deliver_chunk(job, 0, 2)
    transient = result.transient
    assert [(i, r["email"], e.code) for i, r, e in transient] == [(0, "busy@example.org", 451)]
    assert deliverer.store.status(job, "acme")["pending"] == 1
    assert deliverer.store.chunk_states(job)[0][0][0] == "s"  # the chunk keeps its work
    deliverer.fail_for_good(job, transient, "delivery lifetime ended")
    doc = deliverer.store.status(job, "acme")
    assert doc["status"] == "partially_failed"
    assert doc["errors"][0]["code"] == 451
    assert doc["errors"][0]["message"].startswith("delivery lifetime ended; last error: ")


@pytest.mark.parametrize("connections", [1, 4])
def test_an_unreachable_relay_leaves_the_whole_chunk_for_retry(make_deliverer, connections):
    deliverer = make_deliverer(free_port(), connections)
    job = create(deliverer.store, recipients("a@example.org", "b@example.org"))
    result = deliverer.deliver_chunk(job, 0, 2)
    assert [i for i, _, _ in result.transient] == [0, 1]
    assert deliverer.store.status(job, "acme")["status"] == "queued"


def test_several_connections_send_a_chunk_at_once_each_recipient_once(make_deliverer, smtp_server):
    deliverer = make_deliverer(smtp_server.port, connections=4)
    emails = [f"slow{i}@example.org" for i in range(12)] + ["reject@example.org"]
    job = create(deliverer.store, recipients(*emails))
    result = deliverer.deliver_chunk(job, 0, 13)
    assert (result.sent, result.failed, result.transient) == (12, 1, [])
    delivered = sorted(r for _, rcpts, _ in smtp_server.messages for r in rcpts)
    assert delivered == sorted(emails[:12])
    # Messages were accepted side by side, never by more connections than configured.
    assert 2 <= smtp_server.handler.most_in_flight <= 4
    assert deliverer.store.status(job, "acme")["status"] == "partially_failed"


@pytest.mark.parametrize("connections", [1, 3])
def test_a_session_the_relay_ends_leaves_its_recipient_for_retry_and_the_rest_go_on(
    make_deliverer, smtp_server, connections
):
    deliverer = make_deliverer(smtp_server.port, connections)
    emails = [f"a{i}@example.org" for i in range(3)] + ["gone@example.org"]
    emails += [f"b{i}@example.org" for i in range(6)]
    job = create(deliverer.store, recipients(*emails))
    result = deliverer.deliver_chunk(job, 0, len(emails))
    delivered = [r for _, rcpts, _ in smtp_server.messages for r in rcpts]
    retry = [r["email"] for _, r, _ in result.transient]
    assert {e.code for _, _, e in result.transient} == {421}
    # Nobody is both sent and left for retry, and nobody is lost.
    assert sorted(delivered + retry) == sorted(emails) and "gone@example.org" in retry
    assert result.sent == len(delivered) and len(set(delivered)) == len(delivered)
    if connections == 1:
        # One connection: what came after the 421 waits for the retry with it.
        assert retry == emails[3:]
    else:
        # The other connections carry on with the rest of the chunk.
        assert len(delivered) > 3


def test_a_chunk_of_a_job_that_is_gone_sends_nothing(make_deliverer, smtp_server):
    deliverer = make_deliverer(smtp_server.port)
    assert deliverer.deliver_chunk(new_id(), 0, 1).gone
    assert smtp_server.messages == []


def test_a_chunk_another_worker_holds_is_left_to_it(make_deliverer, smtp_server):
    deliverer = make_deliverer(smtp_server.port)
    job = create(deliverer.store, recipients("a@example.org"))
    assert deliverer.store.acquire_lease(job, 0, "another-worker", 30) == 0
    result = deliverer.deliver_chunk(job, 0, 1)
    assert 0 < result.busy_for <= 30 and result.sent == 0
    assert smtp_server.messages == []


@pytest.mark.parametrize("connections", [1, 4])
def test_a_chunk_stops_before_its_next_message_when_its_lease_is_lost(
    make_deliverer, smtp_server, redis_client, connections
):
    deliverer = make_deliverer(smtp_server.port, connections)
    deliverer.lease_seconds = 3  # renewed every second
    count = 20 * connections  # 0.2 s each at the relay: 4 s of work in all
    emails = [f"slow{i}@example.org" for i in range(count)]
    job = create(deliverer.store, recipients(*emails))
    lease = deliverer.store.lease_key(job, 0)

    def steal():
        # Another worker takes over (as after a long pause of this one).
        while not redis_client.exists(lease):
            time.sleep(0.01)
        time.sleep(0.3)
        redis_client.set(lease, "another-worker", ex=30)

    thief = threading.Thread(target=steal)
    thief.start()
    result = deliverer.deliver_chunk(job, 0, count)
    thief.join()
    assert result.interrupted and 0 < result.sent < count
    assert len(smtp_server.messages) == result.sent
    assert redis_client.get(lease) == "another-worker"  # not released by the old holder


def test_a_template_error_fails_that_recipient_only(make_deliverer, smtp_server, tmp_path):
    (tmp_path / "order.txt").write_text("Order ${order}")
    deliverer = make_deliverer(smtp_server.port)
    deliverer.templates = Templates(str(tmp_path))
    chunk = recipients("a@example.org", "b@example.org")
    chunk[1]["vars"] = {"order": "42"}
    job = create(deliverer.store, chunk, dict(MESSAGE, template="order"))
    deliverer.deliver_chunk(job, 0, 2)
    doc = deliverer.store.status(job, "acme")
    assert (doc["sent"], doc["failed"]) == (1, 1)
    assert (
        doc["errors"][0]["recipient"] == "a@example.org" and "order" in doc["errors"][0]["message"]
    )


def test_an_address_suppressed_after_acceptance_is_not_sent_to(
    make_deliverer, smtp_server, redis_prefix
):
    deliverer = make_deliverer(smtp_server.port)
    deliverer.suppressions = SuppressionStore(deliverer.store.redis, redis_prefix)
    job = create(deliverer.store, recipients("a@example.org", "B@example.org", "c@example.org"))
    deliverer.suppressions.add("acme", "b@example.org", "unsubscribed", job_id="f" * 32)
    deliverer.suppressions.add("other", "c@example.org", "manual")
    result = deliverer.deliver_chunk(job, 0, 3)
    assert (result.sent, result.failed) == (2, 1)
    assert [r for _, rcpts, _ in smtp_server.messages for r in rcpts] == [
        "a@example.org",
        "c@example.org",
    ]
    doc = deliverer.store.status(job, "acme")
    assert (doc["status"], doc["sent"], doc["failed"], doc["suppressed"]) == (
        "partially_failed",
        2,
        1,
        1,
    )
    assert doc["errors"] == [
        {"recipient": "B@example.org", "code": None, "message": "suppressed: unsubscribed"}
    ]
    # Redelivered, the chunk records nothing twice.
    deliverer.store.redis.hdel(deliverer.store._key(job, ":outcomes"), "0", "2")
    deliverer.deliver_chunk(job, 0, 3)
    assert deliverer.store.status(job, "acme")["suppressed"] == 1


def test_a_job_ignoring_manual_suppressions_sends_to_them(
    make_deliverer, smtp_server, redis_prefix
):
    deliverer = make_deliverer(smtp_server.port)
    deliverer.suppressions = SuppressionStore(deliverer.store.redis, redis_prefix)
    message = dict(MESSAGE, ignore_suppressions="manual")
    job = create(deliverer.store, recipients("m@example.org", "u@example.org"), message)
    deliverer.suppressions.add("acme", "m@example.org", "manual")
    deliverer.suppressions.add("acme", "u@example.org", "complained")
    result = deliverer.deliver_chunk(job, 0, 2)
    assert (result.sent, result.failed) == (1, 1)
    assert [r for _, rcpts, _ in smtp_server.messages for r in rcpts] == ["m@example.org"]


def test_suppressed_copies_are_left_out_of_their_recipients_message(
    make_deliverer, smtp_server, redis_prefix
):
    deliverer = make_deliverer(smtp_server.port)
    deliverer.suppressions = SuppressionStore(deliverer.store.redis, redis_prefix)
    ana = {
        "email": "ana@example.org",
        "name": "",
        "vars": {},
        "cc": [{"email": "cc-out@example.org", "name": ""}, {"email": "cc@example.org"}],
        "bcc": [{"email": "bcc-out@example.org"}, {"email": "bcc@example.org"}],
    }
    bo = {"email": "bo@example.org", "name": "", "vars": {}, "cc": [{"email": "cc@example.org"}]}
    job = create(deliverer.store, [ana, bo])
    for address in ("cc-out@example.org", "bcc-out@example.org"):
        deliverer.suppressions.add("acme", address, "unsubscribed")
    deliverer.suppressions.add("acme", "bo@example.org", "manual")
    result = deliverer.deliver_chunk(job, 0, 2)
    assert (result.sent, result.failed) == (1, 1)
    [(_, rcpts, msg)] = smtp_server.messages
    assert rcpts == ["ana@example.org", "cc@example.org", "bcc@example.org"]
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["cc@example.org"]
    # Bo's own suppression kept his message, and his copy's, from being sent.
    doc = deliverer.store.status(job, "acme")
    assert (doc["sent"], doc["failed"], doc["suppressed"]) == (1, 1, 1)


def test_the_envelope_sender_is_each_messages_verp_address_when_a_bounce_domain_is_set(
    make_deliverer, smtp_server
):
    deliverer = make_deliverer(smtp_server.port)
    deliverer.verp = VerpAddresses(VerpTokens(lambda: "secret"), "bounces.example.com")
    store = deliverer.store
    # A text job takes the plain-text path (bytes); a job with HTML the EmailMessage path.
    text_job = create(store, recipients("a@example.org", "b@example.org"))
    html_job = new_id()
    content = dump_content({"content": "Body", "html": "<p>Body</p>"})
    chunk = recipients("c@example.org")
    store.create(html_job, chunk, MESSAGE, 100, time.time() + 60, time.time() + 30, content)
    assert deliverer.deliver_chunk(text_job, 0, 2).sent == 2
    assert deliverer.deliver_chunk(html_job, 0, 1).sent == 1
    senders = [mail_from for mail_from, _, _ in smtp_server.messages]
    assert [deliverer.verp.read(sender) for sender in senders] == [
        (text_job, 0),
        (text_job, 1),
        (html_job, 0),
    ]
    assert all(sender.endswith("@bounces.example.com") for sender in senders)
    # Only the envelope: the From header stays the sender's, and DKIM aligns with it.
    for _, _, msg in smtp_server.messages:
        assert msg["From"].addresses[0].addr_spec == "emailsvc@localhost"
        assert "Return-Path" not in msg
    assert smtp_server.messages[2][2].get_content_type() == "multipart/alternative"


def test_the_envelope_sender_is_the_sender_without_a_bounce_domain(make_deliverer, smtp_server):
    deliverer = make_deliverer(smtp_server.port)
    job = create(deliverer.store, recipients("a@example.org"))
    deliverer.deliver_chunk(job, 0, 1)
    assert [mail_from for mail_from, _, _ in smtp_server.messages] == ["emailsvc@localhost"]
