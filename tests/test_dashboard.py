"""The dashboard through WebTest: access, CSRF, security headers, the job and outbox pages."""

import re
from email.message import EmailMessage

import pytest
import webtest

from emailsvc import main

KEY = "operator-k3y-for-tests-0123456789"
BODY = {"recipients": ["ana@example.org", "bo@example.org"], "subject": "Hi there", "content": "c"}


@pytest.fixture
def dashboard(settings):
    settings = dict(settings)
    settings.update(
        {
            "emailsvc.dashboard.enabled": "true",
            "emailsvc.dashboard.operator_key": KEY,
            "emailsvc.mail.transport": "outbox",
        }
    )
    return webtest.TestApp(main({}, **settings)), settings


def csrf(page):
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]


def login(app):
    form = app.get("/dashboard/login", status=200)
    return app.post("/dashboard/login", {"key": KEY, "csrf_token": csrf(form)}, status=303)


def test_the_dashboard_is_off_unless_enabled(app):
    app.get("/dashboard/", status=404)


def test_enabled_with_a_login_but_no_operator_key_stops_start_up(settings):
    from emailsvc.settings import SettingsError

    with pytest.raises(SettingsError, match="EMAILSVC_DASHBOARD_OPERATOR_KEY"):
        main({}, **{**settings, "emailsvc.dashboard.enabled": "true"})


def test_pages_send_visitors_to_the_login_with_strict_headers(dashboard):
    app, _ = dashboard
    assert app.get("/dashboard/", status=303).location.endswith("/dashboard/login")
    form = app.get("/dashboard/login", status=200)
    csp = form.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp and "'unsafe-inline'" not in csp
    assert form.headers["X-Content-Type-Options"] == "nosniff"
    cookie = form.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
    assert "secure" not in cookie.lower().split("samesite")[0]


def test_a_login_without_its_csrf_token_is_refused_and_a_wrong_key_gets_403(dashboard):
    app, _ = dashboard
    app.get("/dashboard/login", status=200)
    app.post("/dashboard/login", {"key": KEY}, status=400)
    form = app.get("/dashboard/login")
    app.post("/dashboard/login", {"key": "wrong", "csrf_token": csrf(form)}, status=403)
    app.get("/dashboard/", status=303)


def test_over_https_the_session_cookie_is_secure(dashboard):
    app, _ = dashboard
    page = app.get("/dashboard/login", extra_environ={"wsgi.url_scheme": "https"})
    assert "; secure" in page.headers["Set-Cookie"].lower()


def test_an_operator_sees_the_jobs_newest_first_and_one_job(dashboard):
    app, _ = dashboard
    first = app.post_json("/email", BODY, status=202).json["id"]
    second = app.post_json("/email", BODY, status=202).json["id"]
    login(app)
    page = app.get("/dashboard/", status=200)
    assert page.text.index(second[:8]) < page.text.index(first[:8])
    assert "0 %" in page.text and "0 sent · 0 failed · 2 pending of 2" in page.text
    assert "queued" in app.get("/dashboard/?status=queued").text
    assert first[:8] not in app.get("/dashboard/?status=sent").text
    job = app.get(f"/dashboard/jobs/{first}", status=200)
    assert "Hi there" in job.text and 'http-equiv="refresh"' in job.text
    app.get("/dashboard/jobs/" + "0" * 32, status=404)
    app.get("/dashboard/jobs/not-an-id", status=404)
    # Bad filter and cursor values are ignored, never an error.
    app.get("/dashboard/?status=nonsense&before=x'y", status=200)


def test_the_jobs_list_pages_by_creation_time(dashboard, monkeypatch):
    app, _ = dashboard
    from emailsvc.dashboard import views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    ids = [app.post_json("/email", BODY, status=202).json["id"] for _ in range(3)]
    login(app)
    page = app.get("/dashboard/")
    assert ids[2][:8] in page.text and ids[1][:8] in page.text and ids[0][:8] not in page.text
    older = page.click("Older")
    assert ids[0][:8] in older.text and ids[1][:8] not in older.text


def test_the_outbox_shows_a_message_its_parts_and_its_source(dashboard):
    app, settings = dashboard
    folder = settings["emailsvc.outbox_dir"]
    import os

    os.makedirs(folder, exist_ok=True)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.org", "Outbox test"
    msg["Date"] = "Sun, 22 Nov 2026 07:00:00 +0000"
    msg.set_content("the text part")
    msg.add_alternative("<p>the html part</p><script>document.title='x'</script>", subtype="html")
    msg.add_attachment(b"%PDF-1", maintype="application", subtype="pdf", filename="a.pdf")
    with open(os.path.join(folder, "m1@example.org.eml"), "wb") as handle:
        handle.write(msg.as_bytes())
    login(app)
    listing = app.get("/dashboard/outbox/", status=200)
    assert "Outbox test" in listing.text and "b@example.org" in listing.text
    page = listing.click("Outbox test")
    assert "the text part" in page.text and "a.pdf" in page.text
    assert '<iframe class="html-part" sandbox=""' in page.text
    html = app.get("/dashboard/outbox/m1@example.org.eml/html", status=200)
    assert "script-src" not in html.headers["Content-Security-Policy"]
    assert "sandbox" in html.headers["Content-Security-Policy"]
    part = page.click("a.pdf")
    assert part.body == b"%PDF-1" and part.headers["Content-Disposition"].startswith("attachment")
    raw = app.get("/dashboard/outbox/m1@example.org.eml/raw")
    assert raw.content_type == "text/plain" and b"Subject: Outbox test" in raw.body
    app.get("/dashboard/outbox/..%2Fsecret.eml", status=404)
    app.get("/dashboard/outbox/nothing.eml", status=404)


def test_the_outbox_pages_exist_only_with_the_outbox_transport(settings):
    settings = {
        **settings,
        "emailsvc.dashboard.enabled": "true",
        "emailsvc.dashboard.require_login": "false",
    }
    app = webtest.TestApp(main({}, **settings))
    assert app.get("/dashboard/", status=200)
    app.get("/dashboard/outbox/", status=404)


def test_wrong_keys_from_one_address_are_throttled_even_before_the_right_one(dashboard):
    app, _ = dashboard
    from emailsvc.dashboard.views import LOGIN_FAILURES

    for _ in range(LOGIN_FAILURES):
        form = app.get("/dashboard/login")
        app.post("/dashboard/login", {"key": "guess", "csrf_token": csrf(form)}, status=403)
    form = app.get("/dashboard/login")
    refused = app.post("/dashboard/login", {"key": KEY, "csrf_token": csrf(form)}, status=429)
    assert int(refused.headers["Retry-After"]) > 0 and "Too many wrong keys" in refused.text
    # Another address is not held back by these.
    other = {"REMOTE_ADDR": "192.0.2.9"}
    form = app.get("/dashboard/login", extra_environ=other)
    app.post(
        "/dashboard/login", {"key": KEY, "csrf_token": csrf(form)}, extra_environ=other, status=303
    )
