"""Accepting a job: one transaction, a start message, and the answer to every Redis failure."""

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from emailsvc.assembly import assemble
from emailsvc.jobs import dispatch
from emailsvc.jobs.dispatch import Revoker, submit
from emailsvc.settings import load

from .harness import free_port, queue_size, wait_for

BODY = {
    "recipients": [{"email": f"r{i}@example.org", "name": "", "vars": {}} for i in range(5)],
    "subject": "S",
    "content": "C",
    "template": "default",
}


@pytest.fixture
def assembly(settings):
    built = assemble(load(dict(settings, **{"emailsvc.chunk_size": "2"}), environ={}))
    yield built
    built.close()


def test_a_job_is_recorded_whole_and_started_with_one_message(assembly):
    job_id = submit(assembly, BODY, client="acme", request_id="req-1")
    store = assembly.jobs
    assert store.status(job_id, "acme")["total"] == 5
    assert [index for index, _ in store.chunk(job_id, 0, 5)[1]] == [0, 1, 2, 3, 4]
    states, _ = store.chunk_states(job_id)
    assert sorted(states) == [0, 2, 4] and {state.kind for state in states.values()} == {"q"}
    assert store.message(job_id)["request_id"] == "req-1"
    # One small message, whatever the number of recipients: chunks are enqueued by a worker.
    assert queue_size(assembly) == 1


def test_a_broker_that_cannot_take_the_start_still_leaves_an_accepted_job(assembly, caplog):
    assembly.celery.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    job_id = submit(assembly, BODY, client="acme")
    # Recorded: the watchdog will start it (tests/functional/test_watchdog.py).
    assert assembly.jobs.status(job_id, "acme")["status"] == "queued"
    assert "its start was not published" in caplog.text


class FlakyStore:
    """The real store, but Redis fails as configured: a fault that cannot be timed otherwise."""

    def __init__(self, store, write_then_fail=False, reads_failing=0):
        self.store = store
        self.write_then_fail = write_then_fail
        self.reads_failing = reads_failing

    def create(self, *args, **kwargs):
        self.created = args[0]
        self.store.create(*args, **kwargs)
        if self.write_then_fail:
            # The transaction ran, but its answer was lost with the connection.
            raise RedisConnectionError("Connection closed by server.")

    def exists(self, job_id):
        if self.reads_failing:
            self.reads_failing -= 1
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379.")
        return self.store.exists(job_id)

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_a_job_written_before_its_answer_was_lost_is_accepted(assembly):
    assembly.jobs = FlakyStore(assembly.jobs, write_then_fail=True, reads_failing=2)
    job_id = submit(assembly, BODY, client="acme")
    assert assembly.jobs.status(job_id, "acme")["total"] == 5


def test_a_job_whose_fate_cannot_be_known_is_refused_and_revoked(assembly, monkeypatch):
    monkeypatch.setattr(dispatch, "CONFIRM_SECONDS", 0.3)
    real = assembly.jobs
    assembly.jobs = FlakyStore(real, write_then_fail=True, reads_failing=1000)
    assembly.revoker = Revoker(real, interval=0.05)
    with pytest.raises(RedisConnectionError):
        submit(assembly, BODY, client="acme")
    job_id = assembly.jobs.created
    # The client is told 503: the job that did get written is removed, never started.
    assert wait_for(lambda: not assembly.revoker.pending, 5)
    assert real.status(job_id, "acme") is None and not real.exists(job_id)
    assert queue_size(assembly) == 0


def test_a_revoked_job_takes_its_idempotency_keys_answer_with_it(
    assembly, monkeypatch, redis_client
):
    monkeypatch.setattr(dispatch, "CONFIRM_SECONDS", 0.3)
    real = assembly.jobs
    assembly.jobs = FlakyStore(real, write_then_fail=True, reads_failing=1000)
    assembly.revoker = Revoker(real, interval=0.05)
    claim, _ = assembly.idempotency.claim("acme", "order-1", "f" * 64)
    with pytest.raises(RedisConnectionError):
        submit(assembly, BODY, client="acme", claim=claim, answer={"id": "x"})
    # The transaction wrote the key's answer with the job; both go: a retry makes the job.
    assert wait_for(lambda: not assembly.revoker.pending, 5)
    assert not real.exists(assembly.jobs.created) and redis_client.get(claim.key) is None


def test_a_jobs_idempotency_answer_is_written_in_its_transaction(assembly, redis_client):
    claim, _ = assembly.idempotency.claim("acme", "order-1", "f" * 64)
    job_id = submit(assembly, BODY, client="acme", claim=claim, answer={"id": "x"})
    _, held = assembly.idempotency.claim("acme", "order-1", "f" * 64)
    assert held == {
        "state": "done",
        "fingerprint": "f" * 64,
        "job_id": job_id,
        "body": {"id": "x"},
    }
    # The claim's own release, once the job stands, leaves the answer in place.
    assert assembly.idempotency.release(claim) is False
    assert redis_client.get(claim.key) is not None


def test_redis_down_refuses_the_job(settings):
    values = dict(settings, **{"emailsvc.redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    down = assemble(load(values, environ={}))
    try:
        with pytest.raises(RedisConnectionError):
            submit(down, BODY, client="acme")
        # Whether the job was written cannot be known: it is revoked once Redis answers.
        assert len(down.revoker.pending) == 1
    finally:
        down.close()
