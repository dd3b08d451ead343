"""Idempotency-Key on POST /email: replays, conflicts, freed keys, per-client scope, atomicity."""

import json
import re
import threading
import time
import urllib.error
import urllib.request

import pytest
import webtest
from hypothesis import given
from hypothesis import strategies as st

from emailsvc import main
from emailsvc.api.auth import hash_key
from emailsvc.api.idempotency import InvalidKey, fingerprint, parse_key
from emailsvc.api.schemas import IDEMPOTENCY_KEY_PATTERN, SendEmailRequest
from emailsvc.api.validators import bound_schema

SHOP_KEY = "shop-key-0123456789"
CRM_KEY = "crm-key-0123456789"
BODY = {"recipients": ["ana@example.org"], "subject": "s", "content": "c"}


def keyed_settings(settings, **extra):
    return dict(
        settings,
        **{
            "emailsvc.require_api_key": "true",
            "emailsvc.api_keys": f"shop:{hash_key(SHOP_KEY)} crm:{hash_key(CRM_KEY)}",
            **extra,
        },
    )


@pytest.fixture
def app(settings):
    return webtest.TestApp(main({}, **keyed_settings(settings)))


def post(app, key, body=BODY, api_key=SHOP_KEY, status=202, raw=None):
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {api_key}",
        "Idempotency-Key": key,
    }
    data = raw if raw is not None else json.dumps(body)
    return app.post("/email", data, headers=headers, status=status)


def job_count(redis_client, prefix):
    return redis_client.zcard(prefix + "jobs:index")


def idempotency_keys(redis_client, prefix):
    return list(redis_client.scan_iter(match=prefix + "idempotency:*"))


def test_the_same_key_and_body_replay_the_first_answer_and_make_no_job(
    app, redis_client, redis_prefix
):
    first = post(app, '"order-1234"')
    again = post(app, '"order-1234"')
    assert again.json == first.json
    assert again.headers["Location"] == first.headers["Location"] == first.json["status_url"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert job_count(redis_client, redis_prefix) == 1


def test_a_bare_key_is_the_same_key_as_its_quoted_form(app, redis_client, redis_prefix):
    first = post(app, '"order-1234"')
    assert post(app, "order-1234").json["id"] == first.json["id"]
    assert job_count(redis_client, redis_prefix) == 1


def test_the_body_is_compared_as_json_not_as_bytes(app, redis_client, redis_prefix):
    first = post(app, '"k"')
    reordered = json.dumps(dict(reversed(list(BODY.items()))), indent=4)
    # "template" is the default's: the validated bodies are the same.
    with_default = json.dumps(dict(BODY, template="default"))
    assert post(app, '"k"', raw=reordered).json["id"] == first.json["id"]
    assert post(app, '"k"', raw=with_default).json["id"] == first.json["id"]
    assert job_count(redis_client, redis_prefix) == 1


def test_the_same_key_with_another_body_is_refused_with_422(app, redis_client, redis_prefix):
    post(app, '"k"')
    response = post(app, '"k"', body=dict(BODY, subject="other"), status=422)
    assert response.json["errors"][0]["name"] == "Idempotency-Key"
    assert "another request body" in response.json["errors"][0]["description"]
    assert job_count(redis_client, redis_prefix) == 1


def test_a_key_whose_first_request_is_running_answers_409_with_retry_after(
    app, redis_client, redis_prefix
):
    registry = app.app.registry
    validated = bound_schema(registry, SendEmailRequest).deserialize({"body": BODY})["body"]
    store = registry.emailsvc.idempotency
    claim, _ = store.claim("shop", "k", fingerprint(validated))
    response = post(app, '"k"', status=409)
    assert response.headers["Retry-After"] == "1"
    assert response.json["errors"][0]["name"] == "Idempotency-Key"
    assert job_count(redis_client, redis_prefix) == 0
    store.release(claim)
    assert "Idempotent-Replayed" not in post(app, '"k"').headers


def test_an_invalid_body_leaves_the_key_free(app, redis_client, redis_prefix):
    post(app, '"k"', body=dict(BODY, recipients=["not an address"]), status=400)
    assert idempotency_keys(redis_client, redis_prefix) == []
    accepted = post(app, '"k"')
    assert "Idempotent-Replayed" not in accepted.headers
    assert job_count(redis_client, redis_prefix) == 1


def test_a_request_over_the_limits_leaves_the_key_free(settings, redis_client, redis_prefix):
    limited = keyed_settings(settings, **{"emailsvc.limit.requests_per_minute": "1"})
    app = webtest.TestApp(main({}, **limited))
    app.app.registry.emailsvc.limiter.clock = lambda: 1_000_030.0
    post(app, '"first"')
    post(app, '"second"', status=429)
    assert len(idempotency_keys(redis_client, redis_prefix)) == 1
    app.app.registry.emailsvc.limiter.clock = lambda: 1_000_090.0
    assert "Idempotent-Replayed" not in post(app, '"second"').headers
    assert job_count(redis_client, redis_prefix) == 2


def test_a_replay_is_not_counted_against_the_limits(settings, redis_client, redis_prefix):
    limited = keyed_settings(settings, **{"emailsvc.limit.requests_per_minute": "1"})
    app = webtest.TestApp(main({}, **limited))
    app.app.registry.emailsvc.limiter.clock = lambda: 1_000_030.0
    first = post(app, '"k"')
    assert post(app, '"k"').json["id"] == first.json["id"]


def test_another_clients_same_key_is_its_own(app, redis_client, redis_prefix):
    shop = post(app, '"k"')
    crm = post(app, '"k"', api_key=CRM_KEY)
    assert shop.json["id"] != crm.json["id"]
    assert "Idempotent-Replayed" not in crm.headers
    assert job_count(redis_client, redis_prefix) == 2
    keys = sorted(idempotency_keys(redis_client, redis_prefix))
    assert [key.split(":")[-2] for key in keys] == ["crm", "shop"]


def test_the_answer_is_kept_for_the_ttl_then_the_key_is_free(settings, redis_client, redis_prefix):
    short = keyed_settings(settings, **{"emailsvc.idempotency_ttl_seconds": "1"})
    app = webtest.TestApp(main({}, **short))
    first = post(app, '"k"')
    [key] = idempotency_keys(redis_client, redis_prefix)
    assert 0 < redis_client.pttl(key) <= 1000
    time.sleep(1.2)
    again = post(app, '"k"')
    assert again.json["id"] != first.json["id"]
    assert "Idempotent-Replayed" not in again.headers
    assert job_count(redis_client, redis_prefix) == 2


def test_a_job_is_recorded_with_its_keys_answer(app, redis_client, redis_prefix):
    first = post(app, '"k"')
    [key] = idempotency_keys(redis_client, redis_prefix)
    answer = json.loads(redis_client.get(key))
    assert answer["state"] == "done" and answer["job_id"] == first.json["id"]
    assert answer["body"] == first.json
    assert 86000 < redis_client.ttl(key) <= 86400


def test_revoking_a_job_frees_its_key(app, redis_client, redis_prefix):
    first = post(app, '"k"')
    [key] = idempotency_keys(redis_client, redis_prefix)
    assert app.app.registry.emailsvc.jobs.revoke(first.json["id"], [key])
    assert idempotency_keys(redis_client, redis_prefix) == []
    assert post(app, '"k"').json["id"] != first.json["id"]


@pytest.mark.parametrize(
    "value",
    ['""', "", '"' + "x" * 256 + '"', '"a\x01b"', '"open', '"a"b"', '"a\\nb"', "a b", "é"],
)
def test_a_malformed_key_is_refused_with_400_and_records_nothing(
    app, redis_client, redis_prefix, value
):
    response = post(app, value, status=400)
    [error] = response.json["errors"]
    assert (error["location"], error["name"]) == ("header", "Idempotency-Key")
    assert job_count(redis_client, redis_prefix) == 0
    assert idempotency_keys(redis_client, redis_prefix) == []


KEYISH = st.text(
    st.sampled_from(['"', "\\", " ", "a", "~", "\x7f", "é", "\x01"])
    | st.characters(max_codepoint=0xFF),
    max_size=260,
)


@given(value=KEYISH | KEYISH.map(lambda v: f'"{v}"'))
def test_the_described_pattern_accepts_exactly_what_parse_key_accepts(value):
    try:
        parse_key(value)
    except InvalidKey:
        accepted = False
    else:
        accepted = True
    assert accepted == bool(re.match(IDEMPOTENCY_KEY_PATTERN, value.strip(" \t"))), value


def test_parse_key_reads_sf_strings_and_bare_keys():
    assert parse_key('"order 1234"') == "order 1234"
    assert parse_key(r'"say \"hi\" \\ bye"') == 'say "hi" \\ bye'
    assert parse_key("  8e03978e-40d5-43e8-bc93-6894a57f9324 ") == (
        "8e03978e-40d5-43e8-bc93-6894a57f9324"
    )
    assert parse_key('"' + "x" * 255 + '"') == "x" * 255
    with pytest.raises(InvalidKey):
        parse_key('"x";param=1')


def test_concurrent_requests_with_one_key_make_one_job(
    settings, start_web, redis_client, redis_prefix
):
    settings.update(keyed_settings(settings))
    web = start_web()
    barrier = threading.Barrier(12)
    answers = []
    # A large job takes long enough to record that the requests overlap.
    body = dict(BODY, recipients=[f"r{i}@example.org" for i in range(3000)])

    def send():
        request = urllib.request.Request(
            web.url + "/email",
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {SHOP_KEY}",
                "Idempotency-Key": '"race"',
            },
        )
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answers.append((response.status, dict(response.headers), json.load(response)))
        except urllib.error.HTTPError as error:
            answers.append((error.code, dict(error.headers), json.load(error)))

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 12
    assert {status for status, _, _ in answers} <= {202, 409}
    accepted = [(headers, body) for status, headers, body in answers if status == 202]
    assert accepted and len({body["id"] for _, body in accepted}) == 1
    assert all(headers["Retry-After"] == "1" for status, headers, _ in answers if status == 409)
    assert sum("Idempotent-Replayed" not in headers for headers, _ in accepted) == 1
    assert job_count(redis_client, redis_prefix) == 1


def test_the_client_sent_twice_with_one_key_makes_one_job(
    settings, start_web, redis_client, redis_prefix, capsys
):
    from emailsvc.cli import client

    settings.update(keyed_settings(settings))
    web = start_web()
    argv = ["send", "--to", "ana@example.org", "--subject", "s", "--content", "c"]
    argv += ["--url", web.url, "--api-key", SHOP_KEY, "--idempotency-key", 'order "1"']
    ids = []
    for _ in range(2):
        assert client.main(argv) == 0
        ids.append(json.loads(capsys.readouterr().out)["id"])
    assert ids[0] == ids[1]
    assert job_count(redis_client, redis_prefix) == 1


def test_a_job_with_every_field_is_fingerprinted_and_replayed(app, redis_client, redis_prefix):
    body = {
        "recipients": [
            "ana@example.org",
            {"email": "bo@example.org", "name": "Bo", "vars": {"order": "1"}, "cc": ["c@x.org"]},
            {"email": "cy@example.org", "bcc": [{"email": "d@x.org", "name": "D"}]},
        ],
        "subject": "Réunion",
        "content": "Bonjour",
        "html": "<p>Bonjour</p>",
        "template": "default",
        "reply_to": "r@example.org",
        "headers": {"X-Campaign": "spring"},
        "attachments": [
            {"filename": "a.txt", "content_type": "text/plain", "content": "aGVsbG8="}
        ],
        "stream": "broadcast",
        "ignore_suppressions": ["manual"],
    }
    first = post(app, '"rich"', body=body)
    assert post(app, '"rich"', body=body).json["id"] == first.json["id"]
    post(app, '"rich"', body=dict(body, headers={"X-Campaign": "autumn"}), status=422)
    assert job_count(redis_client, redis_prefix) == 1
