"""GET and POST /unsubscribe/{token} through the real app and a real Redis (no worker)."""

import re

import pytest

from emailsvc.mail.unsubscribe import PREVIEW_JOB

JOB_ID = "0123456789abcdef0123456789abcdef"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def token(app):
    return app.app.registry.emailsvc.unsubscribe.mint("anonymous", "Ana@example.org", JOB_ID)


def suppression(app, client="anonymous", address="ana@example.org"):
    return app.app.registry.emailsvc.suppressions.get(client, address)


def test_a_one_click_post_suppresses_the_address_at_once(app, token):
    response = app.post(f"/unsubscribe/{token}", ONE_CLICK, status=200)
    assert response.content_type == "text/html"
    assert "Set-Cookie" not in response.headers and "Location" not in response.headers
    assert "You are unsubscribed" in response.text and "a***@example.org" in response.text
    entry = suppression(app)
    assert (entry.reason, entry.job_id) == ("unsubscribed", JOB_ID)
    # The list says so through the API too; posting again changes nothing.
    assert app.get("/suppressions/ana@example.org").json["reason"] == "unsubscribed"
    app.post(f"/unsubscribe/{token}", ONE_CLICK, status=200)
    assert suppression(app) == entry


def test_the_page_and_multipart_bodies_unsubscribe_too(app, token):
    app.post(f"/unsubscribe/{token}", upload_files=[], params=ONE_CLICK, status=200)
    assert suppression(app).reason == "unsubscribed"


def test_a_get_shows_a_confirm_button_and_suppresses_nothing(app, token):
    response = app.get(f"/unsubscribe/{token}", status=200)
    form = response.forms[0]
    assert form.method.lower() == "post" and form.action == ""
    assert form["List-Unsubscribe"].value == "One-Click"
    assert "Ana@example.org" not in response.text and "a***@example.org" in response.text
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "form-action 'self'" in response.headers["Content-Security-Policy"]
    assert "Set-Cookie" not in response.headers
    assert suppression(app) is None
    # The button posts the one-click body to the same URL.
    form.submit(status=200)
    assert suppression(app).reason == "unsubscribed"


def test_forged_or_altered_tokens_get_404_and_suppress_nothing(
    app, token, redis_client, redis_prefix
):
    tokens = app.app.registry.emailsvc.unsubscribe
    altered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    preview = tokens.mint("anonymous", "ana@example.org", PREVIEW_JOB)
    for bad in (altered, token[:-4], token + "x", "x" * 40, "%00", preview):
        for method in ("get", "post"):
            response = getattr(app, method)(f"/unsubscribe/{bad}", status=404)
            assert response.json["status"] == "error"
        app.post(f"/unsubscribe/{bad}", ONE_CLICK, status=404)
    assert (
        list(redis_client.scan_iter(match=app.app.registry.emailsvc.jobs.prefix + "supp:*")) == []
    )


def test_a_post_without_the_one_click_body_suppresses_nothing(app, token):
    for body in ({}, {"List-Unsubscribe": "yes"}):
        app.post(f"/unsubscribe/{token}", body, status=400)
    app.post_json(f"/unsubscribe/{token}", ONE_CLICK, status=400)
    assert suppression(app) is None


def test_no_api_key_is_asked(settings):
    import webtest

    from emailsvc import main
    from emailsvc.api.auth import hash_key

    keyed = dict(settings, **{
        "emailsvc.require_api_key": "true",
        "emailsvc.api_keys": f"shop:{hash_key('shop-key-0123456789')}",
    })  # fmt: skip
    wsgi = main({}, **keyed)
    try:
        app = webtest.TestApp(wsgi)
        shop_token = wsgi.registry.emailsvc.unsubscribe.mint("shop", "bo@example.org", JOB_ID)
        app.get(f"/unsubscribe/{shop_token}", status=200)
        app.post(f"/unsubscribe/{shop_token}", ONE_CLICK, status=200)
        entry = wsgi.registry.emailsvc.suppressions.get("shop", "bo@example.org")
        assert entry.reason == "unsubscribed"
        # The other client ("anonymous") has no such entry.
        assert wsgi.registry.emailsvc.suppressions.get("anonymous", "bo@example.org") is None
    finally:
        wsgi.registry.emailsvc.close()


def test_a_rendered_broadcast_shows_the_headers_but_its_link_unsubscribes_nobody(app):
    body = {
        "recipients": ["ana@example.org"],
        "subject": "News",
        "content": "Hi",
        "stream": "broadcast",
    }
    mime = app.post_json("/email/render", body, status=200).json["mime"]
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in mime
    assert "Precedence: bulk" in mime
    [path] = re.findall(r"<http://localhost(/unsubscribe/[^>]+)>", mime)
    app.post(path, ONE_CLICK, status=404)
    assert suppression(app) is None


def test_processes_on_one_redis_share_the_secret_the_development_default_generates(
    settings, caplog
):

    from emailsvc import main

    with caplog.at_level("WARNING", logger="emailsvc"):
        first, second = main({}, **settings), main({}, **settings)
    assert "emailsvc.unsubscribe.secret is empty" in caplog.text
    try:
        token = first.registry.emailsvc.unsubscribe.mint("acme", "ana@example.org", JOB_ID)
        assert second.registry.emailsvc.unsubscribe.read(token) == (
            "acme",
            "ana@example.org",
            JOB_ID,
        )
    finally:
        first.registry.emailsvc.close()
        second.registry.emailsvc.close()


def test_a_configured_secret_is_used_and_not_warned_about(settings, caplog, redis_client):
    from emailsvc import main

    configured = dict(settings, **{"emailsvc.unsubscribe.secret": "s3cret-of-this-test"})
    with caplog.at_level("WARNING", logger="emailsvc"):
        wsgi = main({}, **configured)
    assert "unsubscribe.secret" not in caplog.text
    try:
        tokens = wsgi.registry.emailsvc.unsubscribe
        token = tokens.mint("acme", "ana@example.org", JOB_ID)
        # Nothing generated in Redis; another secret reads nothing.
        prefix = settings["emailsvc.redis_prefix"]
        assert not redis_client.exists(prefix + "unsubscribe:secret")
        other = main({}, **dict(settings, **{"emailsvc.unsubscribe.secret": "another"}))
        assert other.registry.emailsvc.unsubscribe.read(token) is None
        other.registry.emailsvc.close()
    finally:
        wsgi.registry.emailsvc.close()
