"""One chunk through Deliverer: real Redis, real SMTP server, no broker."""

import pytest
import redis

from emailsvc.jobs.delivery import Deliverer
from emailsvc.jobs.records import JobStore, new_id
from emailsvc.mail.messages import sender_address
from emailsvc.mail.templates import Templates
from emailsvc.mail.transports import SMTPTransport
from emailsvc.settings import load
from tests.harness import free_port

MESSAGE = {"subject": "Hello", "content": "Body", "template": "default", "client": "acme"}


@pytest.fixture
def make_deliverer(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = JobStore(client, redis_prefix, 60)

    def make(port):
        settings = load({"emailsvc.smtp.host": "127.0.0.1", "emailsvc.smtp.port": port}, {})
        sender = sender_address(settings["emailsvc.sender"], settings["emailsvc.sender_name"])
        return Deliverer(store, Templates(), SMTPTransport(settings), sender)

    yield make
    client.close()


def recipients(*emails):
    return [{"email": e, "name": "", "vars": {}} for e in emails]


def test_a_redelivered_chunk_skips_recipients_already_recorded(make_deliverer, smtp_server):
    deliverer = make_deliverer(smtp_server.port)
    job = new_id()
    deliverer.store.create(job, 3, MESSAGE)
    deliverer.store.record_sent(job, 0)
    chunk = recipients("a@example.org", "b@example.org", "c@example.org")
    assert deliverer.deliver_chunk(job, 0, chunk) == []
    assert [r for _, rcpts, _ in smtp_server.messages for r in rcpts] == [
        "b@example.org",
        "c@example.org",
    ]
    assert deliverer.deliver_chunk(job, 0, chunk) == []  # a third run sends nothing more
    assert len(smtp_server.messages) == 2
    assert deliverer.store.status(job, "acme")["status"] == "sent"


def test_offsets_place_a_chunk_inside_the_job(make_deliverer, smtp_server):
    deliverer = make_deliverer(smtp_server.port)
    job = new_id()
    deliverer.store.create(job, 4, MESSAGE)
    deliverer.deliver_chunk(job, 2, recipients("c@example.org", "reject@example.org"))
    doc = deliverer.store.status(job, "acme")
    assert (doc["sent"], doc["failed"], doc["pending"]) == (1, 1, 2)
    assert deliverer.store.done_indexes(job, [0, 1, 2, 3]) == {2, 3}


def test_transient_refusals_are_returned_for_retry_and_not_recorded(make_deliverer, smtp_server):
    deliverer = make_deliverer(smtp_server.port)
    job = new_id()
    deliverer.store.create(job, 2, MESSAGE)
    transient = deliverer.deliver_chunk(job, 0, recipients("busy@example.org", "ok@example.org"))
    assert [(i, r["email"], e.code) for i, r, e in transient] == [(0, "busy@example.org", 451)]
    assert deliverer.store.status(job, "acme")["pending"] == 1
    deliverer.fail_for_good(job, transient)
    doc = deliverer.store.status(job, "acme")
    assert doc["status"] == "partially_failed"
    assert doc["errors"][0]["code"] == 451 and "gave up" in doc["errors"][0]["message"]


def test_an_unreachable_relay_leaves_the_whole_chunk_for_retry(make_deliverer):
    deliverer = make_deliverer(free_port())
    job = new_id()
    deliverer.store.create(job, 2, MESSAGE)
    transient = deliverer.deliver_chunk(job, 0, recipients("a@example.org", "b@example.org"))
    assert [i for i, _, _ in transient] == [0, 1]
    assert deliverer.store.status(job, "acme")["status"] == "queued"


def test_a_chunk_of_a_job_that_is_gone_sends_nothing(make_deliverer, smtp_server):
    deliverer = make_deliverer(smtp_server.port)
    assert deliverer.deliver_chunk(new_id(), 0, recipients("a@example.org")) == []
    assert smtp_server.messages == []


def test_a_template_error_fails_that_recipient_only(make_deliverer, smtp_server, tmp_path):
    (tmp_path / "order.txt").write_text("Order ${order}")
    deliverer = make_deliverer(smtp_server.port)
    deliverer.templates = Templates(str(tmp_path))
    job = new_id()
    deliverer.store.create(job, 2, dict(MESSAGE, template="order"))
    chunk = recipients("a@example.org", "b@example.org")
    chunk[1]["vars"] = {"order": "42"}
    deliverer.deliver_chunk(job, 0, chunk)
    doc = deliverer.store.status(job, "acme")
    assert (doc["sent"], doc["failed"]) == (1, 1)
    assert (
        doc["errors"][0]["recipient"] == "a@example.org" and "order" in doc["errors"][0]["message"]
    )
