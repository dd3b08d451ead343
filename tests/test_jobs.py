"""Job records against the real Redis."""

import json
import time

import pytest
import redis

from emailsvc.jobs.records import JobStore, _resp, new_id

MESSAGE = {"subject": "S", "content": "C", "template": "default", "client": "acme"}


@pytest.fixture
def store(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield JobStore(client, redis_prefix, 60)
    client.close()


def create(store, total, chunk_size=100, deadline=None):
    """A new job of ``total`` recipients; its id."""
    job = new_id()
    recipients = [{"email": f"r{i}@example.org", "name": "", "vars": {}} for i in range(total)]
    deadline = time.time() + 3600 if deadline is None else deadline
    store.create(job, recipients, MESSAGE, chunk_size, deadline, time.time() + 30)
    return job


def counters(doc):
    return doc["status"], doc["sent"], doc["failed"], doc["pending"]


def test_an_unknown_id_has_no_status(store):
    assert store.status(new_id(), "acme") is None


def test_outcomes_move_counters_and_status_to_partially_failed(store):
    job = create(store, 3)
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
    job = create(store, 2)
    assert store.record_sent(job, 0) == 1
    assert store.record_sent(job, 0) == 0
    assert store.record_failed(job, 0, "a@example.org", 550, "late") == 0
    assert counters(store.status(job, "acme")) == ("sending", 1, 0, 1)
    assert store.done_indexes(job, [0, 1]) == {0}


@pytest.mark.parametrize("outcomes, final", [(["sent"] * 2, "sent"), (["failed"] * 2, "failed")])
def test_final_status_follows_the_outcomes(store, outcomes, final):
    job = create(store, 2)
    for index, outcome in enumerate(outcomes):
        if outcome == "sent":
            store.record_sent(job, index)
        else:
            store.record_failed(job, index, f"r{index}@example.org", 550, "no")
    assert store.status(job, "acme")["status"] == final


def test_a_chunk_reads_its_slice_and_only_what_has_no_outcome(store):
    job = create(store, 5, chunk_size=2)
    store.record_sent(job, 3)
    fields, todo = store.chunk(job, 2, 2)
    assert fields["subject"] == "S" and int(fields["chunk_size"]) == 2
    assert todo == [(2, {"email": "r2@example.org", "name": "", "vars": {}})]
    assert [index for index, _ in store.chunk(job, 4, 2)[1]] == [4]
    assert store.chunk(new_id(), 0, 2) == (None, [])


def test_recipients_are_read_back_as_written_bare_addresses_stored_bare(store, redis_client):
    recipients = [
        {"email": "plain@example.org", "name": "", "vars": {}},
        {"email": "{brace}@example.org", "name": "", "vars": {}},
        {"email": "named@example.org", "name": "Zoë", "vars": {}},
        {"email": "vars@example.org", "name": "", "vars": {"order": "{42}"}},
    ]
    job = new_id()
    store.create(job, recipients, MESSAGE, 10, time.time() + 3600, time.time() + 30)
    assert [r for _, r in store.chunk(job, 0, 10)[1]] == recipients
    assert store.recipients(job, 0, 10) == recipients
    stored = redis_client.lrange(f"{store.prefix}job:{job}:recipients", 0, -1)
    assert stored[0] == "plain@example.org"
    assert [json.loads(value) for value in stored[1:]] == recipients[1:]


def test_a_chunk_is_marked_queued_again_only_from_the_state_it_was_judged_in(store):
    job = create(store, 2, chunk_size=2)
    judged = store.chunk_states(job)[0][0]
    assert store.acquire_lease(job, 0, "worker", 30) == 0  # a worker took it meanwhile
    assert not store.mark_requeued(job, 0, judged, 1000.0)
    started = store.chunk_states(job)[0][0]
    assert started.kind == "s"
    assert store.mark_requeued(job, 0, started, 1000.0)
    again = store.chunk_states(job)[0][0]
    assert (again.kind, again.when, again.attempt, again.requeues) == ("q", 1000.0, 0, 1)
    assert store.mark_requeued(job, 0, again, 2000.0)
    assert store.chunk_states(job)[0][0].requeues == 2


def test_chunks_start_queued_one_per_chunk_size(store):
    job = create(store, 5, chunk_size=2)
    states, leased = store.chunk_states(job)
    assert sorted(states) == [0, 2, 4] and {s[0] for s in states.values()} == {"q"}
    assert leased == set()


def test_a_retrying_job_says_why_and_when_and_never_overrides_a_final_status(store):
    job = create(store, 2, chunk_size=1)
    due = time.time() + 60
    error = {"code": 421, "message": "Service not available"}
    store.schedule_retry(job, 0, 1, 1, due, error)
    doc = store.status(job, "acme")
    assert doc["status"] == "retrying" and doc["last_error"] == error
    assert doc["next_attempt_at"].endswith("Z")
    assert store.chunk_states(job)[0][0][0] == "r"
    store.record_sent(job, 0)
    store.record_sent(job, 1)
    store.schedule_retry(job, 0, 1, 2, due, error)
    doc = store.status(job, "acme")
    assert doc["status"] == "sent" and "last_error" not in doc


def test_due_retries_are_taken_once_whoever_asks(store):
    job = create(store, 3, chunk_size=1)
    now = time.time()
    for offset in range(3):
        store.schedule_retry(job, offset, 1, 1, now - 1, {"code": 421, "message": "x"})
    store.schedule_retry(job, 2, 1, 2, now + 60, {"code": 421, "message": "x"})
    first = store.pop_due_retries(now, limit=2)
    second = store.pop_due_retries(now, limit=10)
    assert len(first) == 2 and len(second) == 1
    assert sorted(first + second) == [(job, 0, 1, 1), (job, 1, 1, 1), (job, 2, 1, 1)]
    assert store.pop_due_retries(now) == []
    assert store.scheduled_retry(job, 2, 1, 2)


def test_a_job_to_watch_is_claimed_by_one_caller_at_a_time(store):
    job = create(store, 1)
    later = time.time() + 31
    assert store.claim_jobs_to_watch(later, 10, recheck_after=30) == [job]
    assert store.claim_jobs_to_watch(later, 10, recheck_after=30) == []
    assert store.claim_jobs_to_watch(later + 30, 10, recheck_after=30) == [job]


def test_a_lease_is_held_by_one_token_and_renewed_or_released_only_by_it(store):
    job = create(store, 2, chunk_size=1)
    assert store.acquire_lease(job, 0, "mine", 10) == 0
    assert 0 < store.acquire_lease(job, 0, "theirs", 10) <= 10
    assert store.chunk_states(job)[0][0][0] == "s"
    assert store.chunk_states(job)[1] == {0}
    assert not store.renew_lease(job, 0, "theirs", 10)
    assert store.renew_lease(job, 0, "mine", 10)
    store.release_lease(job, 0, "theirs")
    assert store.chunk_states(job)[1] == {0}
    store.release_lease(job, 0, "mine")
    assert store.acquire_lease(job, 0, "theirs", 10) == 0
    assert store.acquire_lease(new_id(), 0, "mine", 10) == -1


def test_a_revoked_job_is_gone_unless_delivery_had_begun(store, redis_client):
    job = create(store, 2)
    assert store.revoke(job) and store.status(job, "acme") is None
    assert list(redis_client.scan_iter(match=f"{store.prefix}job:{job}*")) == []
    assert redis_client.zscore(store.watch_key, job) is None
    assert store.revoke(new_id())
    begun = create(store, 2)
    store.record_sent(begun, 0)
    assert not store.revoke(begun) and store.status(begun, "acme")["sent"] == 1


def test_a_job_with_suppressed_recipients_only_has_not_begun(store, redis_client):
    job = new_id()
    people = [{"email": f"r{i}@example.org", "name": "", "vars": {}} for i in range(3)]
    store.create(job, people, MESSAGE, 2, time.time() + 60, time.time() + 30, suppressed={1: "x"})
    store.record_suppressed(job, 0, "r0@example.org", "manual")
    doc = store.status(job, "acme")
    assert (doc["failed"], doc["suppressed"], doc["pending"]) == (2, 2, 1)
    assert store.revoke(job)
    assert list(redis_client.scan_iter(match=f"{store.prefix}job:{job}*")) == []
    failed = create(store, 2)
    store.record_failed(failed, 0, "r0@example.org", 550, "no")
    assert not store.revoke(failed)


def test_outcomes_for_a_deleted_job_are_ignored(store):
    job = create(store, 1)
    assert store.revoke(job)
    assert store.record_sent(job, 0) == -1
    assert store.status(job, "acme") is None


def test_a_final_job_leaves_the_watch_list(store, redis_client):
    job = create(store, 1)
    assert redis_client.zscore(store.watch_key, job) is not None
    store.record_sent(job, 0)
    assert redis_client.zscore(store.watch_key, job) is None


def test_records_expire(store, redis_client):
    job = create(store, 1)
    store.record_failed(job, 0, "a@example.org", 550, "no")
    keys = list(redis_client.scan_iter(match=f"{store.prefix}job:{job}*"))
    assert len(keys) >= 4
    for key in keys:
        assert 0 < redis_client.ttl(key) <= 60


# --- the job index: listing newest first, counting by status ---


def test_jobs_are_listed_newest_first_a_page_at_a_time(store):
    jobs = [create(store, 1) for _ in range(5)]
    page, cursor = store.page(limit=2)
    assert [doc["id"] for doc in page] == [jobs[4], jobs[3]]
    page, cursor = store.page(before=cursor, limit=2)
    assert [doc["id"] for doc in page] == [jobs[2], jobs[1]]
    page, cursor = store.page(before=cursor, limit=2)
    assert [doc["id"] for doc in page] == [jobs[0]] and cursor is None


def test_a_status_filter_skips_other_jobs_without_losing_any_across_pages(store):
    jobs = [create(store, 1) for _ in range(5)]
    for job in jobs[::2]:
        store.record_sent(job, 0)
    page, cursor = store.page(status="sent", limit=2)
    assert [doc["id"] for doc in page] == [jobs[4], jobs[2]]
    page, cursor = store.page(status="sent", before=cursor, limit=2)
    assert [doc["id"] for doc in page] == [jobs[0]] and cursor is None
    assert store.count_by_status() == {"sent": 3, "queued": 2}


def test_a_revoked_job_leaves_the_index_and_old_entries_are_trimmed(store):
    revoked, kept = create(store, 1), create(store, 1)
    assert store.revoke(revoked)
    assert [doc["id"] for doc in store.page()[0]] == [kept]
    # An entry older than the records' TTL (60 s here) goes when the next job is created.
    store.redis.zadd(store.index_key, {"f" * 32: time.time() - 120})
    newest = create(store, 1)
    assert store.redis.zscore(store.index_key, "f" * 32) is None
    assert [doc["id"] for doc in store.page()[0]] == [newest, kept]


def test_the_operator_detail_has_the_start_of_delivery_and_ignores_the_client(store):
    job = create(store, 2)
    assert store.detail(job)["started_at"] is None
    assert store.acquire_lease(job, 0, "token", 5) == 0
    store.record_failed(job, 1, "b@example.org", 550, "No such user")
    detail = store.detail(job)
    assert detail["started_at"] and detail["client"] == "acme" and detail["subject"] == "S"
    assert detail["errors"][0]["code"] == 550 and detail["pending"] == 1
    assert store.detail(new_id()) is None
    assert store.retries_waiting(time.time()) == (0, 0)


def test_a_sent_recorder_writes_each_outcome_and_reads_its_answer_later(store):
    job = create(store, 3)
    recorder = store.sent_recorder()
    recorder.write(job, 0)
    assert recorder.confirm() == 1
    recorder.write(job, 0)  # recorded already: counted once
    assert recorder.confirm() == 0
    assert recorder.confirm() is None  # nothing written since
    with pytest.raises(RuntimeError, match="not confirmed"):
        recorder.write(job, 1)
        recorder.write(job, 2)
    recorder.close()
    assert counters(store.status(job, "acme"))[1] in (1, 2)


def test_an_answer_left_unread_never_reaches_the_next_user_of_the_connection(store):
    job = create(store, 2)
    recorder = store.sent_recorder()
    recorder.write(job, 0)
    recorder.close()  # a chunk that crashed before confirming
    # Every command after it gets its own answer.
    assert store.record_sent(job, 1) == 1
    assert store.redis.ping() is True
    assert counters(store.status(job, "acme")) == ("sent", 2, 0, 0)


def test_a_recorder_records_again_when_redis_forgot_the_script(store):
    job = create(store, 1)
    store.redis.script_flush()
    recorder = store.sent_recorder()
    recorder.write(job, 0)
    assert recorder.confirm() == 1
    recorder.close()
    assert counters(store.status(job, "acme")) == ("sent", 1, 0, 0)


def test_the_recorders_commands_are_packed_as_redis_py_packs_them():
    arguments = ("EVALSHA", "ab" * 20, 2, "k:é", "k2", 17, "sent", "", 3600, 1.5, "x")
    packed = redis.Connection().pack_command(*arguments)
    assert _resp(arguments) == b"".join(packed)
