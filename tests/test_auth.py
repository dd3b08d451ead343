"""API keys: the Bearer header, hashed keys in settings, 401s and job ownership."""

import json

import pytest
import webtest

from emailsvc import main
from emailsvc.api.auth import KeyRing, bearer_token, hash_key
from emailsvc.settings import SettingsError, api_key_entries

VALID = {"recipients": ["ana@example.org"], "subject": "Hello", "content": "Hi"}
SHOP_KEY = "shop-key-0123456789"
CRM_KEY = "crm-key-0123456789"


def keyed_app(settings, **extra):
    keys = f"shop:{hash_key(SHOP_KEY)} crm:{hash_key(CRM_KEY)}"
    values = {"emailsvc.require_api_key": "true", "emailsvc.api_keys": keys, **extra}
    return webtest.TestApp(main({}, **dict(settings, **values)))


def post(app, key, status, body=VALID):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return app.post("/email", json.dumps(body), headers=headers, status=status)


def get(app, key, path, status):
    return app.get(path, headers={"Authorization": f"Bearer {key}"}, status=status)


def test_entries_hold_hashes_and_a_client_may_have_several():
    entries = api_key_entries(f"shop:{hash_key('a')}\n shop:{hash_key('b')}  crm:{'A' * 64}")
    assert list(entries) == [("shop", hash_key("a")), ("shop", hash_key("b")), ("crm", "a" * 64)]
    ring = KeyRing(entries)
    assert ring.client_for("a") == ring.client_for("b") == "shop"
    assert ring.client_for("c") is None and ring.client_for("") is None
    assert ring.clients == ["crm", "shop"]


@pytest.mark.parametrize(
    "text", ["shop", "shop:1234", f"Shop:{'a' * 64}", f"sh op:{'a' * 64}", f":{'a' * 64}"]
)
def test_malformed_entries_are_refused_without_echoing_them(text):
    with pytest.raises(ValueError) as info:
        api_key_entries(text)
    assert "entry 1" in str(info.value) and text not in str(info.value)


def test_a_key_itself_in_the_settings_is_refused_at_start_up(settings):
    with pytest.raises(SettingsError) as info:
        keyed_app(settings, **{"emailsvc.api_keys": f"shop:{SHOP_KEY}"})
    assert "EMAILSVC_API_KEYS" in str(info.value) and SHOP_KEY not in str(info.value)


@pytest.mark.parametrize(
    "header, token",
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None)],
)
def test_bearer_token_reads_only_the_bearer_scheme(header, token):
    request = webtest.TestRequest.blank("/", headers={"Authorization": header})
    assert bearer_token(request) == token


def test_no_key_gets_401_with_a_bearer_challenge_in_cornice_format(settings, redis_client):
    app = keyed_app(settings)
    response = post(app, None, 401)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="emailsvc"'
    assert response.json["status"] == "error"
    error = response.json["errors"][0]
    assert error["location"] == "header" and error["name"] == "Authorization"
    assert "Missing API key" in error["description"]
    assert list(redis_client.scan_iter(match=settings["emailsvc.redis_prefix"] + "job:*")) == []


@pytest.mark.parametrize("key", ["wrong", hash_key(SHOP_KEY), SHOP_KEY + "x", SHOP_KEY[:-1]])
def test_a_wrong_key_or_the_hash_itself_gets_401_invalid_token(settings, key):
    response = post(keyed_app(settings), key, 401)
    assert response.headers["WWW-Authenticate"].endswith('error="invalid_token"')
    assert "Invalid API key" in response.json["errors"][0]["description"]


def test_the_status_endpoint_needs_a_key_too(settings):
    app = keyed_app(settings)
    job = post(app, SHOP_KEY, 202).json
    assert app.get(f"/email/{job['id']}", status=401).json["status"] == "error"


def test_a_valid_key_is_accepted_and_the_job_records_its_client(settings, redis_client):
    job = post(keyed_app(settings), SHOP_KEY, 202).json
    key = f"{settings['emailsvc.redis_prefix']}job:{job['id']}"
    assert redis_client.hget(key, "client") == "shop"


def test_another_clients_job_answers_404_like_an_unknown_one(settings):
    app = keyed_app(settings)
    job = post(app, SHOP_KEY, 202).json
    assert get(app, SHOP_KEY, f"/email/{job['id']}", 200).json["id"] == job["id"]
    other = get(app, CRM_KEY, f"/email/{job['id']}", 404).json
    unknown = get(app, CRM_KEY, f"/email/{'0' * 32}", 404).json
    assert other["errors"][0]["name"] == unknown["errors"][0]["name"] == "task_id"


def test_urls_outside_email_stay_public(settings):
    # Health, SPORE and OpenAPI endpoints carry no permission; unknown URLs answer 404.
    app = keyed_app(settings)
    for url in ("/__lbheartbeat__", "/__version__", "/spore", "/openapi.json", "/", "/docs"):
        app.get(url, status=200)
    assert app.get("/nowhere", status=404).json["status"] == "error"


def test_without_required_keys_everyone_is_anonymous(app, settings, redis_client):
    assert app.app.registry.emailsvc.settings["emailsvc.require_api_key"] is False
    job = post(app, None, 202).json
    key = f"{settings['emailsvc.redis_prefix']}job:{job['id']}"
    assert redis_client.hget(key, "client") == "anonymous"
    assert get(app, "anything", f"/email/{job['id']}", 200).json["status"] == "queued"


def test_the_context_says_whether_keys_are_required(settings):
    assert keyed_app(settings).app.registry.emailsvc.settings["emailsvc.require_api_key"] is True


def test_development_ini_runs_open_and_production_ini_requires_keys():
    from emailsvc.settings import from_ini

    assert from_ini("development.ini", environ={})["emailsvc.require_api_key"] is False
    assert from_ini("production.ini", environ={})["emailsvc.require_api_key"] is True


def test_an_open_service_says_so_at_start_up(settings, caplog):
    with caplog.at_level("WARNING", logger="emailsvc"):
        main({}, **settings)
    assert "runs open" in caplog.text
