"""The optional "from" of a job: only in domains the client's key may send from."""

import json

import pytest
import webtest

from emailsvc import main
from emailsvc.api.auth import hash_key

from .harness import wait_for

SHOP_KEY = "shop-key-0123456789"
CRM_KEY = "crm-key-0123456789"
VALID = {"recipients": ["ana@example.org"], "subject": "Hello", "content": "Hi"}


def sender_settings(settings):
    return dict(
        settings,
        **{
            "emailsvc.require_api_key": "true",
            "emailsvc.api_keys": f"shop:{hash_key(SHOP_KEY)} crm:{hash_key(CRM_KEY)}",
            "emailsvc.senders.shop": "shop.example News.Shop.Example",
        },
    )


def post(app, key, sender, status):
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    body = dict(VALID, **{"from": sender})
    return app.post("/email", json.dumps(body), headers=headers, status=status)


@pytest.mark.parametrize(
    "key, sender",
    [
        (CRM_KEY, "orders@shop.example"),
        (SHOP_KEY, "ceo@example.org"),
        (SHOP_KEY, "x@sub.shop.example"),
        (SHOP_KEY, "x@shop.example.evil.org"),
    ],
)
def test_a_sender_outside_the_clients_domains_gets_403(
    settings, redis_client, redis_prefix, key, sender
):
    app = webtest.TestApp(main({}, **sender_settings(settings)))
    error = post(app, key, sender, 403).json["errors"][0]
    assert error["location"] == "body" and error["name"] == "from"
    assert list(redis_client.scan_iter(match=redis_prefix + "*")) == []


def test_a_malformed_sender_gets_400(settings):
    app = webtest.TestApp(main({}, **sender_settings(settings)))
    assert post(app, SHOP_KEY, "Shop <orders@shop.example>", 400).json["status"] == "error"


def test_an_allowed_sender_is_the_from_and_envelope_sender(settings, start_worker, smtp_server):
    start_worker()
    app = webtest.TestApp(main({}, **sender_settings(settings)))
    job = post(app, SHOP_KEY, "Orders@news.shop.example", 202).json

    def done():
        headers = {"Authorization": f"Bearer {SHOP_KEY}"}
        return app.get(f"/email/{job['id']}", headers=headers).json["status"] == "sent"

    assert wait_for(done, timeout=30)
    (mail_from, _, msg) = smtp_server.messages[0]
    assert mail_from == "Orders@news.shop.example"
    assert msg["From"].addresses[0].addr_spec == "Orders@news.shop.example"


def test_without_from_the_service_sender_is_used(settings, start_worker, smtp_server):
    start_worker()
    app = webtest.TestApp(main({}, **sender_settings(settings)))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {CRM_KEY}"}
    app.post("/email", json.dumps(VALID), headers=headers, status=202)
    assert wait_for(lambda: smtp_server.messages, timeout=30)
    assert smtp_server.messages[0][0] == settings["emailsvc.sender"]
