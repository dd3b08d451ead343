"""Limits per client, counted in Redis: 429 with Retry-After, and nothing recorded."""

import json

import pytest
import webtest

from emailsvc import main
from emailsvc.api.auth import hash_key
from emailsvc.api.limits import LimitExceeded, RateLimiter
from emailsvc.settings import SettingsError, load

SHOP_KEY = "shop-key-0123456789"
CRM_KEY = "crm-key-0123456789"


def limited_app(settings, **extra):
    values = {
        "emailsvc.require_api_key": "true",
        "emailsvc.api_keys": f"shop:{hash_key(SHOP_KEY)} crm:{hash_key(CRM_KEY)}",
        **extra,
    }
    app = main({}, **dict(settings, **values))
    # A fixed clock: a window that ends in the middle of a test would reset its counters.
    app.registry.emailsvc.limiter.clock = lambda: 1_000_030.0
    return webtest.TestApp(app)


def post(app, recipients=1, key=SHOP_KEY, status=202):
    body = {
        "recipients": [f"r{i}@example.org" for i in range(recipients)],
        "subject": "s",
        "content": "c",
    }
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    return app.post("/email", json.dumps(body), headers=headers, status=status)


def job_count(redis_client, prefix):
    # One hash per job, "job:<32 hex>"; its other keys ("job:<id>:recipients", ...) follow it.
    return len(list(redis_client.scan_iter(match=prefix + "job:" + "?" * 32)))


def test_requests_over_the_minute_limit_get_429_and_record_nothing(
    settings, redis_client, redis_prefix
):
    app = limited_app(settings, **{"emailsvc.limit.requests_per_minute": "3"})
    for _ in range(3):
        post(app)
    response = post(app, status=429)
    assert response.headers["Retry-After"] == str(60 - 1_000_030 % 60)
    assert response.json["status"] == "error"
    assert "3 requests per minute" in response.json["errors"][0]["description"]
    assert job_count(redis_client, redis_prefix) == 3


def test_a_refused_recipient_count_consumes_nothing(settings, redis_client, redis_prefix):
    app = limited_app(settings, **{"emailsvc.limit.recipients_per_hour": "10"})
    post(app, recipients=6)
    response = post(app, recipients=5, status=429)
    assert response.headers["Retry-After"] == str(3600 - 1_000_030 % 3600)
    # The refused 5 were not counted: 4 more still fit exactly, then 1 more does not.
    post(app, recipients=4)
    post(app, recipients=1, status=429)
    assert job_count(redis_client, redis_prefix) == 2


def test_a_job_larger_than_the_hourly_limit_is_told_to_split(settings):
    app = limited_app(settings, **{"emailsvc.limit.recipients_per_hour": "3"})
    description = post(app, recipients=4, status=429).json["errors"][0]["description"]
    assert "split the job" in description


def test_each_client_has_its_own_counters_and_may_override_the_defaults(settings):
    app = limited_app(
        settings,
        **{
            "emailsvc.limit.requests_per_minute": "1",
            "emailsvc.limit.crm.requests_per_minute": "3",
        },
    )
    post(app)
    post(app, status=429)
    for _ in range(3):
        post(app, key=CRM_KEY)
    post(app, key=CRM_KEY, status=429)


def test_counters_are_shared_by_web_processes(settings):
    values = {"emailsvc.limit.requests_per_minute": "2"}
    first, second = limited_app(settings, **values), limited_app(settings, **values)
    post(first)
    post(second)
    post(first, status=429)
    post(second, status=429)


def test_invalid_requests_are_not_counted(settings):
    app = limited_app(settings, **{"emailsvc.limit.requests_per_minute": "1"})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {SHOP_KEY}"}
    app.post("/email", json.dumps({"subject": "s"}), headers=headers, status=400)
    post(app)


def test_counters_live_under_the_prefix_and_expire(settings, redis_client, redis_prefix):
    post(limited_app(settings))
    keys = list(redis_client.scan_iter(match=redis_prefix + "limit:shop:*"))
    assert len(keys) == 2
    assert all(0 < redis_client.ttl(key) <= 3605 for key in keys)


def test_windows_reset_and_retry_after_counts_to_the_next_window(redis_client, redis_prefix):
    now = [1_000_020.0]
    limiter = RateLimiter(
        redis_client,
        redis_prefix,
        load({"emailsvc.limit.requests_per_minute": "1"}, environ={}).limits_for,
        clock=lambda: now[0],
    )
    limiter.check_and_count("shop", 1)
    with pytest.raises(LimitExceeded) as info:
        limiter.check_and_count("shop", 1)
    assert info.value.retry_after == 60 - (1_000_020 % 60)
    now[0] += info.value.retry_after
    limiter.check_and_count("shop", 1)


def test_zero_means_no_limit(redis_client, redis_prefix):
    limits = {"emailsvc.limit.requests_per_minute": "0", "emailsvc.limit.recipients_per_hour": "0"}
    limiter = RateLimiter(redis_client, redis_prefix, load(limits, environ={}).limits_for)
    for _ in range(50):
        limiter.check_and_count("shop", 10_000)


@pytest.mark.parametrize(
    "key",
    ["emailsvc.limit.requests_per_hour", "emailsvc.limit.shop.recipients", "emailsvc.limit.a.b.c"],
)
def test_unknown_limit_settings_are_refused(key):
    with pytest.raises(SettingsError, match=key):
        load({key: "1"}, environ={})


def test_negative_limits_are_refused():
    with pytest.raises(SettingsError, match="EMAILSVC_LIMIT_REQUESTS_PER_MINUTE"):
        load({"emailsvc.limit.requests_per_minute": "-1"}, environ={})


def test_per_client_settings_come_from_the_environment_for_configured_clients():
    environ = {
        "EMAILSVC_API_KEYS": f"shop:{'a' * 64} back-office:{'b' * 64}",
        "EMAILSVC_LIMIT_SHOP_REQUESTS_PER_MINUTE": "7",
        "EMAILSVC_LIMIT_BACK_OFFICE_RECIPIENTS_PER_HOUR": "70",
        "EMAILSVC_SENDERS_SHOP": "shop.example",
        "EMAILSVC_LIMIT_NOBODY_REQUESTS_PER_MINUTE": "1",
    }
    settings = load({}, environ)
    assert settings.limits_for("shop")["requests_per_minute"] == 7
    assert settings.limits_for("back-office")["recipients_per_hour"] == 70
    assert settings.limits_for("nobody")["requests_per_minute"] == 600
    assert settings.senders_for("shop") == {"shop.example"}


def test_an_accepted_job_says_how_many_requests_are_left(settings):
    app = limited_app(settings, **{"emailsvc.limit.requests_per_minute": "3"})
    first, second = post(app), post(app)
    assert first.headers["RateLimit-Limit"] == "3"
    assert first.headers["RateLimit-Remaining"] == "2"
    assert second.headers["RateLimit-Remaining"] == "1"
    assert second.headers["RateLimit-Reset"] == str(60 - 1_000_030 % 60)


def test_a_429_carries_ratelimit_headers_beside_retry_after(settings):
    app = limited_app(settings, **{"emailsvc.limit.requests_per_minute": "1"})
    post(app)
    response = post(app, status=429)
    assert response.headers["RateLimit-Limit"] == "1"
    assert response.headers["RateLimit-Remaining"] == "0"
    assert response.headers["RateLimit-Reset"] == response.headers["Retry-After"]


def test_a_429_for_recipients_describes_the_hourly_limit(settings):
    app = limited_app(settings, **{"emailsvc.limit.recipients_per_hour": "10"})
    post(app, recipients=6)
    response = post(app, recipients=5, status=429)
    assert response.headers["RateLimit-Limit"] == "10"
    assert response.headers["RateLimit-Remaining"] == "4"
    assert response.headers["RateLimit-Reset"] == str(3600 - 1_000_030 % 3600)


def test_a_client_without_a_request_limit_gets_no_ratelimit_headers(settings):
    app = limited_app(settings, **{"emailsvc.limit.requests_per_minute": "0"})
    assert "RateLimit-Limit" not in post(app).headers
