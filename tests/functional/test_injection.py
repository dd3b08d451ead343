"""Injection attempts through the real app, a real worker and a real SMTP server.

Every hostile input gets a 4xx in Cornice's format, records nothing and never reaches
SMTP; what is accepted arrives exactly as sent, never interpreted.
"""

import base64
import json

import pytest

from ..harness import wait_for

GOOD = {"recipients": ["ana@example.org"], "subject": "Hello", "content": "Hi"}


def b64_word(text):
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


HOSTILE_SUBJECTS = [
    "a\rBcc: evil@evil.org",
    "a\nBcc: evil@evil.org",
    "a\r\nBcc: evil@evil.org",
    "a\x00b",
    "a\u2028Bcc: evil@evil.org",
    "a\u2029b",
    "a\x85b",
    "a\x0bb",
    "a\x1b[31mred",
    b64_word("hi\r\nBcc: evil@evil.org"),
    "=?utf-8?q?hi=0D=0ABcc:_evil@evil.org?=",
    "Re: " + b64_word("x"),
]
HOSTILE_ADDRESSES = [
    "alice@example.org)<bob@evil.org>",
    "alice@example.org <bob@evil.org>",
    "Alice <alice@example.org>",
    "bob@evil.org (alice@example.org)",
    '"bob@evil.org"@example.org',
    '"a b"@example.org',
    "alice@example.org,bob@evil.org",
    "alice@example.org, bob@evil.org",
    "alice@example.org;bob@evil.org",
    "alice@example.org\r\nRCPT TO:<bob@evil.org>",
    "alice@example.org\nbob@evil.org",
    "alice@example.org\x00",
    "alice\u2028@example.org",
    "a@[127.0.0.1]",
    "a@[IPv6:::1]",
    "a@127.0.0.1",
    "=?utf-8?q?bob=40evil.org?=@example.org",
]
HOSTILE_NAMES = [
    "Ana\r\nBcc: evil@evil.org",
    "Ana\nBcc: evil@evil.org",
    "Ana\x00",
    "Ana\u2028",
    "Ana\x85",
    b64_word('x" <bob@evil.org>, "y'),
    "=?utf-8?q?Ana?=",
]
HOSTILE_VARS = ["x\r\ny", "x\ny", "x\x00", "x\u2028y", "x\u2029y", "x\x85y"]
HOSTILE_TEMPLATES = [
    "../x",
    "../../../../etc/passwd",
    "/etc/passwd",
    "pkg:emailsvc/templates/default.txt",
    "emailsvc:templates/default.txt",
    "default.txt",
    "templates/default",
    "DEFAULT",
]


def corpus():
    for subject in HOSTILE_SUBJECTS:
        yield dict(GOOD, subject=subject)
    for address in HOSTILE_ADDRESSES:
        yield dict(GOOD, recipients=[address])
        yield dict(GOOD, recipients=[{"email": address, "name": "Ana"}])
    for name in HOSTILE_NAMES:
        yield dict(GOOD, recipients=[{"email": "ana@example.org", "name": name}])
    for value in HOSTILE_VARS:
        yield dict(GOOD, recipients=[{"email": "ana@example.org", "vars": {"v": value}}])
    for template in HOSTILE_TEMPLATES:
        yield dict(GOOD, template=template)
    yield dict(GOOD, content="a\x00b")
    yield dict(GOOD, **{"from": "x@example.org\r\nBcc: evil@evil.org"})
    # No client may choose a From here (no emailsvc.senders.* is configured): 403.
    yield dict(GOOD, **{"from": "ceo@example.org"})


def post(app, body, status):
    headers = {"Content-Type": "application/json"}
    return app.post("/email", json.dumps(body), headers=headers, status=status)


def job_keys(redis_client, prefix):
    return sorted(redis_client.scan_iter(match=prefix + "job:*"))


def delivered(app, job_id):
    doc = app.get(f"/email/{job_id}").json
    return doc if doc["status"] in ("sent", "failed", "partially_failed") else None


def test_hostile_inputs_get_4xx_and_never_reach_smtp(
    app, start_worker, smtp_server, redis_client, redis_prefix
):
    start_worker()
    bodies = list(corpus())
    for body in bodies:
        response = app.post(
            "/email",
            json.dumps(body),
            headers={"Content-Type": "application/json"},
            expect_errors=True,
        )
        assert response.status_int in (400, 403), (body, response.status)
        assert response.json["status"] == "error" and response.json["errors"], body
    assert job_keys(redis_client, redis_prefix) == []
    # A good job sent after the corpus: once it is delivered, the worker has taken
    # everything queued before it, and the SMTP server must have seen that job alone.
    marker = dict(GOOD, subject="marker")
    job = post(app, marker, 202).json
    assert wait_for(lambda: delivered(app, job["id"]), timeout=30)["status"] == "sent"
    messages = smtp_server.messages
    assert [(rcpts, msg["Subject"]) for _, rcpts, msg in messages] == [
        (["ana@example.org"], "marker")
    ]
    assert len(bodies) > 60


def test_template_syntax_in_content_and_vars_arrives_literally(app, start_worker, smtp_server):
    start_worker()
    content = "${to} ${import('os')} tal:content=\"x\" <tal:b tal:replace=\"'y'\"/> $${x} ?"
    body = dict(
        GOOD,
        content=content,
        recipients=[{"email": "ana@example.org", "name": "${sender}", "vars": {"v": "${to}"}}],
    )
    job = post(app, body, 202).json
    assert wait_for(lambda: delivered(app, job["id"]), timeout=30)["status"] == "sent"
    (_, _, msg) = smtp_server.messages[0]
    assert msg.get_content().replace("\r\n", "\n").startswith(content + "\n")
    assert msg["To"].addresses[0].display_name == "${sender}"


@pytest.mark.parametrize(
    "name", ["Ana <bob@evil.org>, x", 'Ana" <bob@evil.org>', "Ana; bob@evil.org", "A, B"]
)
def test_a_display_name_cannot_add_an_address(app, start_worker, smtp_server, name):
    start_worker()
    body = dict(GOOD, recipients=[{"email": "ana@example.org", "name": name}])
    job = post(app, body, 202).json
    assert wait_for(lambda: delivered(app, job["id"]), timeout=30)["status"] == "sent"
    (_, rcpts, msg) = smtp_server.messages[0]
    assert rcpts == ["ana@example.org"]
    addresses = msg["To"].addresses
    assert [(a.display_name, a.addr_spec) for a in addresses] == [(name, "ana@example.org")]


def test_a_non_ascii_subject_is_encoded_and_decodes_to_itself(app, start_worker, smtp_server):
    start_worker()
    subject = "Réunion = ? ?= lundi « 8h »"
    job = post(app, dict(GOOD, subject=subject), 202).json
    assert wait_for(lambda: delivered(app, job["id"]), timeout=30)["status"] == "sent"
    (_, _, msg) = smtp_server.messages[0]
    assert msg["Subject"] == subject
    assert "Bcc" not in msg and len(msg.get_all("To")) == 1
