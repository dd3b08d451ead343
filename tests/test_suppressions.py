"""The suppression list against the real Redis."""

import pytest
import redis

from emailsvc.jobs.suppressions import SuppressionStore


@pytest.fixture
def store(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield SuppressionStore(client, redis_prefix, clock=lambda: 1_790_000_000)
    client.close()


def test_an_added_address_is_found_whatever_its_case(store):
    entry, created = store.add("acme", "Ana@Example.org", "manual")
    assert created
    assert entry.document() == {
        "email": "ana@example.org",
        "reason": "manual",
        "created_at": "2026-09-21T14:13:20Z",
        "job_id": None,
    }
    assert store.get("acme", "ANA@example.ORG") == entry
    assert store.reasons("acme", ["x@example.org", "ana@EXAMPLE.org"]) == [None, "manual"]


def test_another_clients_list_is_separate(store):
    store.add("acme", "ana@example.org", "manual")
    assert store.get("other", "ana@example.org") is None
    assert store.reasons("other", ["ana@example.org"]) == [None]
    assert store.page("other") == ([], None)
    assert store.remove("other", "ana@example.org") == (False, None)
    assert store.get("acme", "ana@example.org") is not None


def test_an_unsubscribe_replaces_a_manual_entry_but_not_the_reverse(store):
    store.add("acme", "ana@example.org", "manual")
    entry, created = store.add("acme", "ana@example.org", "unsubscribed", job_id="j" * 32)
    assert created and entry.reason == "unsubscribed" and entry.job_id == "j" * 32
    kept, created = store.add("acme", "ana@example.org", "manual")
    assert not created and kept == entry
    assert [e.email for e in store.page("acme", reason="manual")[0]] == []
    assert [e.email for e in store.page("acme", reason="unsubscribed")[0]] == ["ana@example.org"]


def test_unsubscribes_and_complaints_cannot_be_removed(store):
    store.add("acme", "u@example.org", "unsubscribed")
    store.add("acme", "c@example.org", "complained")
    store.add("acme", "m@example.org", "manual")
    store.add("acme", "b@example.org", "bounced")
    for email in ("u@example.org", "c@example.org"):
        removed, entry = store.remove("acme", email)
        assert not removed and entry.email == email
    for email in ("m@example.org", "b@example.org"):
        removed, entry = store.remove("acme", email)
        assert removed and entry.email == email
        assert store.get("acme", email) is None
    assert [e.email for e in store.page("acme")[0]] == ["c@example.org", "u@example.org"]
    assert store.page("acme", reason="manual") == ([], None)


def test_pages_follow_the_cursor_to_the_end(store):
    emails = [f"r{i:02d}@example.org" for i in range(7)]
    for email in emails:
        store.add("acme", email, "manual" if email != "r03@example.org" else "bounced")
    seen, cursor, pages = [], None, 0
    while True:
        entries, cursor = store.page("acme", after=cursor, limit=3)
        seen += [e.email for e in entries]
        pages += 1
        if cursor is None:
            break
    assert seen == emails and pages == 3
    assert [e.email for e in store.page("acme", reason="bounced")[0]] == ["r03@example.org"]
    assert store.page("acme", limit=7) == (store.page("acme", limit=8)[0], None)


def test_unknown_reasons_are_refused(store):
    with pytest.raises(ValueError):
        store.add("acme", "ana@example.org", "annoyed")
