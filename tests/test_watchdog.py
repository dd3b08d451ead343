"""The periodic step against a real Redis and broker: what it re-enqueues, and what it fails.

Each test runs twice: with the job store's Redis as the broker, and with RabbitMQ.
"""

import json
import time

import pytest

from emailsvc.assembly import assemble
from emailsvc.jobs import watchdog
from emailsvc.jobs.dispatch import submit
from emailsvc.jobs.tasks import DELIVER_CHUNK, START_JOB
from emailsvc.settings import load

BODY = {
    "recipients": [{"email": f"r{i}@example.org", "name": "", "vars": {}} for i in range(5)],
    "subject": "S",
    "content": "C",
    "template": "default",
}


@pytest.fixture(params=["redis", "rabbitmq"])
def assembly(request, settings):
    """The parts of the service, with the job store's Redis or RabbitMQ as the broker."""
    values = dict(
        settings,
        **{
            "emailsvc.chunk_size": "2",
            "emailsvc.watchdog.stall_seconds": "30",
            "emailsvc.delivery_lifetime_seconds": "3600",
        },
    )
    if request.param == "rabbitmq":
        values["emailsvc.broker_url"] = request.getfixturevalue("rabbitmq").url
    built = assemble(load(values, environ={}))
    yield built
    built.close()


def queued(assembly):
    """The tasks waiting in the queue, as ``(name, args)``, consumed from it."""
    found = []
    app = assembly.celery
    with app.connection_for_read() as connection:
        # The queue as the app declares it (on RabbitMQ, a quorum queue).
        queue = connection.SimpleQueue(app.amqp.queues[assembly.settings["emailsvc.queue"]])
        try:
            while True:
                try:
                    message = queue.get(block=False)
                except queue.Empty:
                    return found
                found.append((message.headers["task"], json.loads(message.body)[0]))
                message.ack()
        finally:
            queue.close()


def test_a_job_whose_start_was_lost_is_started_once_the_queue_is_empty(assembly):
    job_id = submit(assembly, BODY, client="acme")
    assert queued(assembly) == [(START_JOB, [job_id])]  # the start is lost here
    watchdog.look_after_jobs(assembly.celery, time.time())
    assert queued(assembly) == []  # not due yet: it may still be waiting in a backlog
    later = time.time() + 31
    watchdog.look_after_jobs(assembly.celery, later)
    assert sorted(queued(assembly)) == [
        (DELIVER_CHUNK, [job_id, 0, 2, 0]),
        (DELIVER_CHUNK, [job_id, 2, 2, 0]),
        (DELIVER_CHUNK, [job_id, 4, 1, 0]),
    ]
    assert assembly.jobs.status(job_id, "acme")["status"] == "queued"


def test_queued_chunks_in_a_backlog_are_enqueued_again_after_a_doubling_wait(assembly):
    # Its start waits in the queue: a backlog, or a message reserved by a killed worker.
    job_id = submit(assembly, BODY, client="acme")
    start = time.time()
    watchdog.look_after_jobs(assembly.celery, start + 31)  # waited the stall: again
    watchdog.look_after_jobs(assembly.celery, start + 63)  # 32 s since: not yet (60 s)
    watchdog.look_after_jobs(assembly.celery, start + 95)  # 64 s since: again
    chunks = [(DELIVER_CHUNK, [job_id, offset, count, 0]) for offset, count in CHUNKS]
    assert sorted(queued(assembly)) == sorted(chunks * 2 + [(START_JOB, [job_id])])
    assert assembly.jobs.status(job_id, "acme")["status"] == "queued"


CHUNKS = [(0, 2), (2, 2), (4, 1)]  # the chunks of BODY: (offset, count)


ONE_CHUNK = dict(BODY, recipients=BODY["recipients"][:2])


def test_a_started_chunk_whose_lease_lapsed_is_enqueued_again(assembly):
    job_id = submit(assembly, ONE_CHUNK, client="acme")
    queued(assembly)
    store = assembly.jobs
    assert store.acquire_lease(job_id, 0, "dead-worker", 30) == 0
    store.record_sent(job_id, 0)
    watchdog.look_after_jobs(assembly.celery, time.time() + 31)
    assert queued(assembly) == []  # the lease is alive: its worker is on it
    store.redis.delete(store.lease_key(job_id, 0))  # the worker died; its lease lapsed
    watchdog.look_after_jobs(assembly.celery, time.time() + 62)
    # While that task waits in the queue, the chunk counts as queued again, not as lost
    # at every look: enqueued again only after its doubled wait.
    watchdog.look_after_jobs(assembly.celery, time.time() + 94)
    assert queued(assembly) == [(DELIVER_CHUNK, [job_id, 0, 2, 0])]
    assert store.chunk_states(job_id)[0][0].kind == "q"


def test_a_retry_that_left_the_schedule_unpublished_is_enqueued_again(assembly):
    job_id = submit(assembly, ONE_CHUNK, client="acme")
    queued(assembly)
    store = assembly.jobs
    due = time.time() + 5
    store.schedule_retry(job_id, 0, 2, 3, due, {"code": 421, "message": "busy"})
    watchdog.look_after_jobs(assembly.celery, due + 31)
    assert queued(assembly) == []  # still in the schedule: the scheduler publishes it
    store.pop_due_retries(due)  # taken by a worker that died before publishing it
    watchdog.look_after_jobs(assembly.celery, due + 62)
    assert queued(assembly) == [(DELIVER_CHUNK, [job_id, 0, 2, 3])]


def test_due_retries_are_published_by_the_scheduler(assembly):
    job_id = submit(assembly, BODY, client="acme")
    queued(assembly)
    due = time.time()
    assembly.jobs.schedule_retry(job_id, 2, 2, 1, due, {"code": 421, "message": "busy"})
    watchdog.publish_due_retries(assembly.celery, due - 1)
    assert queued(assembly) == []
    watchdog.publish_due_retries(assembly.celery, due)
    assert queued(assembly) == [(DELIVER_CHUNK, [job_id, 2, 2, 1])]


def test_a_job_past_its_lifetime_fails_its_pending_recipients_with_the_last_error(assembly):
    job_id = submit(assembly, BODY, client="acme")
    queued(assembly)
    store = assembly.jobs
    store.record_sent(job_id, 0)
    store.schedule_retry(job_id, 2, 2, 1, time.time(), {"code": 421, "message": "busy"})
    after_lifetime = time.time() + assembly.settings["emailsvc.delivery_lifetime_seconds"] + 1
    watchdog.look_after_jobs(assembly.celery, after_lifetime)
    doc = store.status(job_id, "acme")
    assert (doc["status"], doc["sent"], doc["failed"], doc["pending"]) == (
        "partially_failed",
        1,
        4,
        0,
    )
    assert {(e["code"], e["message"]) for e in doc["errors"]} == {
        (421, "delivery lifetime ended; last error: busy")
    }
    assert queued(assembly) == []


def test_a_finished_job_is_no_longer_watched(assembly):
    job_id = submit(assembly, dict(BODY, recipients=BODY["recipients"][:1]), client="acme")
    queued(assembly)
    assembly.jobs.record_sent(job_id, 0)
    assert assembly.jobs.claim_jobs_to_watch(time.time() + 3600, 10, 30) == []


def test_a_published_retry_waiting_in_a_backlog_is_enqueued_again_once_per_doubled_wait(
    assembly,
):
    job_id = submit(assembly, ONE_CHUNK, client="acme")  # its start stays in the queue
    store = assembly.jobs
    due = time.time()
    store.schedule_retry(job_id, 0, 2, 1, due, {"code": 421, "message": "busy"})
    watchdog.publish_due_retries(assembly.celery, due)  # published, behind the start
    watchdog.look_after_jobs(assembly.celery, due + 31)  # it may be reserved by a dead worker
    watchdog.look_after_jobs(assembly.celery, due + 62)  # 31 s since: not yet (60 s)
    assert sorted(queued(assembly)) == [
        (DELIVER_CHUNK, [job_id, 0, 2, 1]),
        (DELIVER_CHUNK, [job_id, 0, 2, 1]),
        (START_JOB, [job_id]),
    ]


def test_a_queue_rabbitmq_refuses_to_redeclare_is_never_taken_for_empty(settings, rabbitmq):
    # A classic queue of the same name (declared before the service used quorum queues):
    # its length cannot be read, so no queued chunk is taken for lost.
    settings = dict(settings, **{"emailsvc.broker_url": rabbitmq.url})
    built = assemble(load(settings, environ={}))
    try:
        with built.celery.connection_for_write() as connection:
            connection.default_channel.queue_declare(
                settings["emailsvc.queue"], durable=True, auto_delete=False
            )
        assert watchdog._queue_is_empty(built.celery) is False
    finally:
        with built.celery.connection_for_write() as connection:
            connection.default_channel.queue_delete(settings["emailsvc.queue"])
        built.close()
