"""The suppression list's endpoints through the real app and a real Redis (no worker)."""

import pytest
import webtest

from emailsvc import main
from emailsvc.api.auth import hash_key

SHOP_KEY = "shop-key-0123456789"
CRM_KEY = "crm-key-0123456789"


@pytest.fixture
def app(settings):
    keys = f"shop:{hash_key(SHOP_KEY)} crm:{hash_key(CRM_KEY)}"
    values = {"emailsvc.require_api_key": "true", "emailsvc.api_keys": keys}
    wsgi = main({}, **dict(settings, **values))
    yield webtest.TestApp(wsgi)
    wsgi.registry.emailsvc.close()


def call(app, method, path, status, key=SHOP_KEY):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return getattr(app, method)(path, headers=headers, status=status)


def test_a_put_address_is_listed_with_reason_manual_and_the_time(app):
    added = call(app, "put", "/suppressions/Ana@Example.ORG", 201).json
    assert added["email"] == "ana@example.org" and added["reason"] == "manual"
    assert added["created_at"].endswith("Z") and added["job_id"] is None
    assert call(app, "get", "/suppressions/ana%40example.org", 200).json == added
    # Putting it again changes nothing.
    assert call(app, "put", "/suppressions/ANA@example.org", 200).json == added


def test_a_removed_address_is_gone(app):
    added = call(app, "put", "/suppressions/ana@example.org", 201).json
    assert call(app, "delete", "/suppressions/Ana@example.org", 200).json == added
    assert call(app, "get", "/suppressions/ana@example.org", 404).json["status"] == "error"
    call(app, "delete", "/suppressions/ana@example.org", 404)


def test_an_unsubscribe_cannot_be_removed_through_the_api(app):
    suppressions = app.app.registry.emailsvc.suppressions
    suppressions.add("shop", "ana@example.org", "unsubscribed", job_id="a" * 32)
    error = call(app, "delete", "/suppressions/ana@example.org", 409).json["errors"][0]
    assert "unsubscribed" in error["description"]
    entry = call(app, "get", "/suppressions/ana@example.org", 200).json
    assert entry["reason"] == "unsubscribed" and entry["job_id"] == "a" * 32
    # Nor turned back into a manual one.
    assert call(app, "put", "/suppressions/ana@example.org", 200).json == entry


def test_another_clients_suppressions_are_invisible(app):
    call(app, "put", "/suppressions/ana@example.org", 201)
    call(app, "get", "/suppressions/ana@example.org", 404, key=CRM_KEY)
    call(app, "delete", "/suppressions/ana@example.org", 404, key=CRM_KEY)
    assert call(app, "get", "/suppressions", 200, key=CRM_KEY).json == {
        "suppressions": [],
        "cursor": None,
    }
    # The other client's own entry for the address is its own.
    call(app, "put", "/suppressions/ana@example.org", 201, key=CRM_KEY)
    call(app, "delete", "/suppressions/ana@example.org", 200, key=CRM_KEY)
    call(app, "get", "/suppressions/ana@example.org", 200)


def test_the_list_is_paged_with_a_cursor_and_filtered_by_reason(app):
    emails = [f"r{i:02d}@example.org" for i in range(5)]
    for email in emails:
        call(app, "put", f"/suppressions/{email}", 201)
    app.app.registry.emailsvc.suppressions.add("shop", "b@example.org", "bounced")
    first = call(app, "get", "/suppressions?limit=2", 200).json
    assert [e["email"] for e in first["suppressions"]] == ["b@example.org", "r00@example.org"]
    seen, cursor = [], first["cursor"]
    while cursor:
        page = call(app, "get", f"/suppressions?limit=2&cursor={cursor}", 200).json
        seen += [e["email"] for e in page["suppressions"]]
        cursor = page["cursor"]
    assert seen == emails[1:]
    bounced = call(app, "get", "/suppressions?reason=bounced", 200).json
    assert [e["email"] for e in bounced["suppressions"]] == ["b@example.org"]
    assert bounced["cursor"] is None


@pytest.mark.parametrize(
    "path, name",
    [
        ("/suppressions/not-an-address", "email"),
        ("/suppressions/a@b.org,c@d.org", "email"),
        ("/suppressions/a%40%5B127.0.0.1%5D", "email"),
        ("/suppressions/%3D%3Futf-8%3Fq%3Fx%3F%3D@example.org", "email"),
        ("/suppressions?reason=annoyed", "reason"),
        ("/suppressions?limit=0", "limit"),
        ("/suppressions?limit=501", "limit"),
        ("/suppressions?limit=x", "limit"),
        ("/suppressions?cursor=a%0Ab", "cursor"),
        ("/suppressions?reason=", "reason"),
        ("/suppressions?limit=", "limit"),
    ],
)
def test_bad_addresses_and_parameters_get_400_naming_them(app, path, name):
    for method in ("get", "put", "delete") if "?" not in path else ("get",):
        error = call(app, method, path, 400).json["errors"][0]
        assert error["name"] == name and error["location"] in ("path", "querystring")


def test_changes_count_toward_the_request_limit_and_reads_do_not(
    settings, redis_client, redis_prefix
):
    keys = f"shop:{hash_key(SHOP_KEY)}"
    values = {"emailsvc.require_api_key": "true", "emailsvc.api_keys": keys}
    values["emailsvc.limit.requests_per_minute"] = "2"
    wsgi = main({}, **dict(settings, **values))
    try:
        app = webtest.TestApp(wsgi)
        call(app, "put", "/suppressions/a@example.org", 201)
        call(app, "delete", "/suppressions/a@example.org", 200)
        refused = call(app, "put", "/suppressions/b@example.org", 429)
        assert refused.headers["Retry-After"] and refused.json["status"] == "error"
        call(app, "get", "/suppressions/b@example.org", 404)
        assert call(app, "get", "/suppressions", 200).json["suppressions"] == []
    finally:
        wsgi.registry.emailsvc.close()


def test_the_endpoints_need_a_key(app, redis_client, redis_prefix):
    call(app, "put", "/suppressions/ana@example.org", 401, key=None)
    call(app, "get", "/suppressions", 401, key="wrong")
    assert list(redis_client.scan_iter(match=redis_prefix + "supp:*")) == []


def post_job(app, body, status=202, key=SHOP_KEY):
    headers = {"Authorization": f"Bearer {key}"}
    return app.post_json("/email", body, headers=headers, status=status)


def status_of(app, job_id, key=SHOP_KEY):
    return call(app, "get", f"/email/{job_id}", 200, key=key).json


def test_a_job_records_its_suppressed_recipients_failed_when_accepted(app):
    call(app, "put", "/suppressions/bo@example.org", 201)
    body = {"recipients": ["ana@example.org", "Bo@EXAMPLE.org"], "subject": "S", "content": "C"}
    accepted = post_job(app, body).json
    assert (accepted["status"], accepted["total"], accepted["suppressed"]) == ("queued", 2, 1)
    doc = status_of(app, accepted["id"])
    assert (doc["sent"], doc["failed"], doc["suppressed"], doc["pending"]) == (0, 1, 1, 1)
    assert doc["errors"] == [
        {"recipient": "Bo@example.org", "code": None, "message": "suppressed: manual"}
    ]
    # Another client's list does not apply to this one's jobs.
    other = post_job(app, body, key=CRM_KEY).json
    assert other["suppressed"] == 0


def test_a_job_of_suppressed_recipients_only_ends_failed_at_once(app, redis_client, redis_prefix):
    call(app, "put", "/suppressions/bo@example.org", 201)
    accepted = post_job(app, {"recipients": ["bo@example.org"], "subject": "S", "content": "C"})
    assert accepted.json["status"] == "failed"
    doc = status_of(app, accepted.json["id"])
    assert (doc["status"], doc["failed"], doc["suppressed"]) == ("failed", 1, 1)
    assert doc["finished_at"] is not None
    # Nothing is left for a worker or the watchdog.
    job_id = accepted.json["id"]
    assert not redis_client.exists(f"{redis_prefix}job:{job_id}:chunks")
    assert redis_client.zscore(f"{redis_prefix}jobs:watch", job_id) is None


def test_a_job_may_ignore_manual_suppressions_only(app):
    call(app, "put", "/suppressions/bo@example.org", 201)
    app.app.registry.emailsvc.suppressions.add("shop", "un@example.org", "unsubscribed")
    body = {
        "recipients": ["bo@example.org", "un@example.org"],
        "subject": "S",
        "content": "C",
        "ignore_suppressions": ["manual"],
    }
    accepted = post_job(app, body).json
    assert accepted["suppressed"] == 1
    [error] = status_of(app, accepted["id"])["errors"]
    assert error["message"] == "suppressed: unsubscribed"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"ignore_suppressions": ["unsubscribed"]}, "ignore_suppressions.0"),
        ({"ignore_suppressions": ["complained"]}, "ignore_suppressions.0"),
        ({"ignore_suppressions": "manual"}, "ignore_suppressions"),
        ({"ignore_suppressions": [1]}, "ignore_suppressions.0"),
        ({"stream": "marketing"}, "stream"),
        ({"stream": ""}, "stream"),
    ],
)
def test_bad_stream_or_ignored_reasons_get_400(app, change, field, redis_client, redis_prefix):
    body = dict({"recipients": ["ana@example.org"], "subject": "S", "content": "C"}, **change)
    errors = post_job(app, body, status=400).json["errors"]
    assert [e["name"] for e in errors] == [field]
    assert list(redis_client.scan_iter(match=redis_prefix + "job:*")) == []
