"""GET /metrics in one process: the text format, what it counts, who may read it."""

import pytest
import webtest
from prometheus_client.parser import text_string_to_metric_families

from emailsvc import main
from emailsvc.metrics import code_class

BODY = {"recipients": ["ana@example.org", "bo@example.org"], "subject": "s", "content": "c"}


def samples(text):
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def make_app(settings, **changes):
    return webtest.TestApp(main({}, **{**settings, **changes}))


def test_metrics_count_requests_by_route_and_accepted_jobs_by_client(app):
    app.post_json("/email", BODY, status=202)
    app.get("/nowhere", status=404)
    scraped = samples(app.get("/metrics", status=200).text)
    assert scraped[("emailsvc_jobs_accepted_total", frozenset({("client", "anonymous")}))] == 1
    recipients = ("emailsvc_recipients_accepted_total", frozenset({("client", "anonymous")}))
    assert scraped[recipients] == 2
    post = {("route", "send_email"), ("method", "POST"), ("status", "202")}
    assert scraped[("emailsvc_http_requests_total", frozenset(post))] == 1
    unmatched = {("route", "unmatched"), ("method", "GET"), ("status", "404")}
    assert scraped[("emailsvc_http_requests_total", frozenset(unmatched))] == 1
    timed = {("route", "send_email"), ("method", "POST")}
    assert scraped[("emailsvc_http_request_duration_seconds_count", frozenset(timed))] == 1
    assert scraped[("emailsvc_jobs", frozenset({("status", "queued")}))] == 1
    assert scraped[("emailsvc_redis_up", frozenset())] == 1


def test_the_bounce_receivers_counts_are_served_from_redis(app):
    jobs = app.app.registry.emailsvc.jobs
    for kind in ("soft_bounce", "soft_bounce", "complaint"):
        jobs.count_report(kind)
    scraped = samples(app.get("/metrics", status=200).text)
    counted = {
        dict(labels)["kind"]: value
        for (name, labels), value in scraped.items()
        if name == "emailsvc_bounce_reports_total"
    }
    assert counted == {
        "hard_bounce": 0,
        "soft_bounce": 2,
        "complaint": 1,
        "other": 0,
        "dead_letter": 0,
    }


def test_an_address_outside_the_allow_list_gets_a_json_403(settings):
    app = make_app(settings, **{"emailsvc.metrics.allow": "10.0.0.0/8 ::1"})
    refused = app.get("/metrics", extra_environ={"REMOTE_ADDR": "192.0.2.7"}, status=403)
    assert refused.json["status"] == "error"
    app.get("/metrics", extra_environ={"REMOTE_ADDR": "10.1.2.3"}, status=200)


def test_a_metrics_token_is_required_as_a_bearer_token(settings):
    app = make_app(settings, **{"emailsvc.metrics.token": "s3cret-scraper"})
    missing = app.get("/metrics", status=401)
    assert missing.json["errors"][0]["name"] == "Authorization"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    app.get("/metrics", headers={"Authorization": "Bearer wrong"}, status=401)
    app.get("/metrics", headers={"Authorization": "Bearer s3cret-scraper"}, status=200)


def test_a_bad_allow_list_stops_start_up_naming_the_setting(settings):
    from emailsvc.settings import SettingsError

    with pytest.raises(SettingsError, match="emailsvc.metrics.allow"):
        make_app(settings, **{"emailsvc.metrics.allow": "not-an-address"})


@pytest.mark.parametrize(
    ("code", "expected"), [(550, "5xx"), (451, "4xx"), (None, "none"), (99, "none")]
)
def test_failures_are_counted_by_smtp_code_class(code, expected):
    assert code_class(code) == expected


def test_a_redis_that_does_not_answer_gives_redis_up_0_and_no_made_up_gauges(settings):
    import redis

    from emailsvc.jobs.records import JobStore
    from emailsvc.metrics import Metrics, RedisCollector
    from emailsvc.settings import load

    from .harness import free_port

    # A real client towards a port nothing listens on.
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5, decode_responses=True)
    assembly = type("Parts", (), {})()
    assembly.settings = load(settings)
    assembly.jobs = JobStore(dead, "p:", 60)
    assembly.redis = dead
    scraped = samples(Metrics().exposition(RedisCollector(assembly))[0].decode())
    assert scraped[("emailsvc_redis_up", frozenset())] == 0
    assert not [name for name, _ in scraped if name in ("emailsvc_jobs", "emailsvc_queue_depth")]
    dead.close()
