"""Job records against the real Redis."""

import pytest

from emailsvc.jobs.records import JobStore, new_id

MESSAGE = {"subject": "S", "content": "C", "template": "default", "client": "acme"}


@pytest.fixture
def store(redis_url, redis_prefix):
    import redis

    return JobStore(redis.Redis.from_url(redis_url, decode_responses=True), redis_prefix, 60)


def counters(doc):
    return doc["status"], doc["sent"], doc["failed"], doc["pending"]


def test_an_unknown_id_has_no_status(store):
    assert store.status(new_id(), "acme") is None


def test_outcomes_move_counters_and_status_to_partially_failed(store):
    job = new_id()
    store.create(job, 3, MESSAGE)
    assert counters(store.status(job, "acme")) == ("queued", 0, 0, 3)
    store.record_sent(job, 0)
    assert counters(store.status(job, "acme")) == ("sending", 1, 0, 2)
    store.record_failed(job, 2, "c@example.org", 550, "No such user")
    store.record_sent(job, 1)
    doc = store.status(job, "acme")
    assert counters(doc) == ("partially_failed", 2, 1, 0)
    assert doc["finished_at"] is not None
    assert doc["errors"] == [
        {"recipient": "c@example.org", "code": 550, "message": "No such user"}
    ]


def test_a_recipient_is_counted_once_however_often_it_is_recorded(store):
    job = new_id()
    store.create(job, 2, MESSAGE)
    assert store.record_sent(job, 0) == 1
    assert store.record_sent(job, 0) == 0
    assert store.record_failed(job, 0, "a@example.org", 550, "late") == 0
    assert counters(store.status(job, "acme")) == ("sending", 1, 0, 1)
    assert store.done_indexes(job, [0, 1]) == {0}


@pytest.mark.parametrize("outcomes, final", [(["sent"] * 2, "sent"), (["failed"] * 2, "failed")])
def test_final_status_follows_the_outcomes(store, outcomes, final):
    job = new_id()
    store.create(job, 2, MESSAGE)
    for index, outcome in enumerate(outcomes):
        if outcome == "sent":
            store.record_sent(job, index)
        else:
            store.record_failed(job, index, f"r{index}@example.org", 550, "no")
    assert store.status(job, "acme")["status"] == final


def test_retrying_never_overrides_a_final_status(store):
    job = new_id()
    store.create(job, 1, MESSAGE)
    store.mark_retrying(job)
    assert store.status(job, "acme")["status"] == "retrying"
    store.record_sent(job, 0)
    store.mark_retrying(job)
    assert store.status(job, "acme")["status"] == "sent"


def test_outcomes_for_a_deleted_job_are_ignored(store):
    job = new_id()
    store.create(job, 1, MESSAGE)
    store.delete(job)
    assert store.record_sent(job, 0) == -1
    assert store.status(job, "acme") is None


def test_records_expire(store, redis_client):
    job = new_id()
    store.create(job, 1, MESSAGE)
    store.record_failed(job, 0, "a@example.org", 550, "no")
    for key in redis_client.scan_iter(match=f"{store.prefix}job:{job}*"):
        assert 0 < redis_client.ttl(key) <= 60
