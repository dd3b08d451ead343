"""Injection attempts through the real app, a real worker and a real SMTP server.

Every hostile input gets a 4xx in Cornice's format, records nothing and never reaches
SMTP; what is accepted arrives exactly as sent, never interpreted.
"""

import base64
import json
from urllib.parse import quote

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


ATTACHMENT = {"filename": "a.pdf", "content_type": "application/pdf", "content": "JVBERi0x"}
IMAGE = dict(ATTACHMENT, filename="logo.png", content_type="image/png", content_id="logo")
HOSTILE_HEADER_NAMES = [
    "Bcc",
    "bcc",
    "To",
    "CC",
    "From",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "content-transfer-encoding",
    "Content-Disposition",
    "DKIM-Signature",
    "Received",
    "Return-Path",
    "Sender",
    "Reply-To",
    "Resent-To",
    "X-A:B",
    "X A",
    "X-\r\nBcc",
    "X-\nBcc",
    "X-\x00",
    "X-é",
    "",
    "X-" + "a" * 80,
]
HOSTILE_HEADER_VALUES = [
    "a\r\nBcc: evil@evil.org",
    "a\nBcc: evil@evil.org",
    "a\rb",
    "a\x00",
    "a\u2028b",
    "a\x85b",
    b64_word("x\r\nBcc: evil@evil.org"),
    "=?utf-8?q?x?=",
    "Zoë",
    "",
    "x" * 1000,
]
HOSTILE_FILENAMES = [
    "a\r\nContent-Type: text/html",
    "a\n.pdf",
    "a\x00.pdf",
    "a\u2028.pdf",
    b64_word("x.exe"),
    "../",
    "..",
    "/",
    "",
    "evil.exe",
    "EVIL.EXE",
    "invoice.pdf.exe",
    "x.js",
    "x.vbs",
    "x.scr",
    "x.bat",
    "x.cmd",
    "x.jar",
    "../../evil.exe",
    "C:\\Windows\\evil.exe",
    "a" * 300 + ".pdf",
]
HOSTILE_CONTENT_TYPES = [
    "text/html\r\nBcc: evil@evil.org",
    "application/pdf; name=x.exe",
    "application/x-msdownload",
    "application/x-msdos-program",
    "application/javascript",
    "text/javascript",
    "application/java-archive",
    "multipart/mixed",
    "message/rfc822",
    "application",
    "../x",
    "",
    "text/plain\x00",
]
HOSTILE_CONTENT_IDS = [
    "a>\r\nBcc: evil@evil.org",
    "<logo>",
    "a b",
    "a@b@c",
    "=?utf-8?q?x?=",
    "a\x00",
    "",
    "a\u2028",
]
HOSTILE_CONTENT = ["not base64!", "YQ", "YQ=", "JVBERi0x\x00"]
HOSTILE_PDF_FILENAMES = ["a/b.pdf", "x.exe", "a\r\n.pdf", "${x.pdf", "x.pdf\n", "${}.pdf"]


def rich_corpus():
    """The fields of HTML jobs: headers, attachments, cc and bcc, reply-to, PDFs."""
    html = dict(GOOD, html='<img src="cid:logo">')
    for name in HOSTILE_HEADER_NAMES:
        yield dict(GOOD, headers={name: "x"})
    for value in HOSTILE_HEADER_VALUES:
        yield dict(GOOD, headers={"X-Campaign": value})
    yield dict(GOOD, headers={"X-A": "1", "x-a": "2"})
    yield dict(GOOD, headers={f"X-{i}": "v" for i in range(21)})
    yield dict(GOOD, headers=["X-A: 1"])
    for filename in HOSTILE_FILENAMES:
        yield dict(GOOD, attachments=[dict(ATTACHMENT, filename=filename)])
    for content_type in HOSTILE_CONTENT_TYPES:
        yield dict(GOOD, attachments=[dict(ATTACHMENT, content_type=content_type)])
    for content_id in HOSTILE_CONTENT_IDS:
        yield dict(html, attachments=[dict(IMAGE, content_id=content_id)])
    for content in HOSTILE_CONTENT:
        yield dict(GOOD, attachments=[dict(ATTACHMENT, content=content)])
    # An inline image without HTML to show it; twice the same content id; unknown fields.
    yield dict(GOOD, attachments=[IMAGE])
    yield dict(html, attachments=[IMAGE, IMAGE])
    yield dict(GOOD, attachments=[dict(ATTACHMENT, path="/etc/passwd")])
    for address in HOSTILE_ADDRESSES:
        for field in ("cc", "bcc"):
            yield dict(GOOD, recipients=[{"email": "ana@example.org", field: [address]}])
            copy = {"email": address, "name": "Chef"}
            yield dict(GOOD, recipients=[{"email": "ana@example.org", field: [copy]}])
        yield dict(GOOD, reply_to=address)
    for name in HOSTILE_NAMES:
        yield dict(
            GOOD,
            recipients=[{"email": "ana@example.org", "cc": [{"email": "c@x.org", "name": name}]}],
        )
    yield dict(GOOD, recipients=[{"email": "ana@example.org", "cc": "c@example.org"}])
    yield dict(
        GOOD, recipients=[{"email": "ana@example.org", "bcc": [{"email": "c@x.org", "x": 1}]}]
    )
    yield dict(GOOD, html="<p>a\x00b</p>")
    for filename in HOSTILE_PDF_FILENAMES:
        yield dict(GOOD, pdf_attachments=[{"template": "default", "filename": filename}])
    for template in HOSTILE_TEMPLATES:
        yield dict(GOOD, pdf_attachments=[{"template": template, "filename": "a.pdf"}])


HOSTILE_STREAMS = ["", "Broadcast", "broadcast\r\n", "bulk", 1, None, ["broadcast"]]
HOSTILE_IGNORED = [["unsubscribed"], ["complained"], ["bounced"], ["manual", "x"], "manual"]
HOSTILE_IGNORED += [[None], [["manual"]], {"manual": True}, ["MANUAL"], ["manual\n"]]


def corpus():
    for stream in HOSTILE_STREAMS:
        yield dict(GOOD, stream=stream)
    for ignored in HOSTILE_IGNORED:
        yield dict(GOOD, ignore_suppressions=ignored)
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
    yield from rich_corpus()


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
    assert len(bodies) > 250


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


def test_hostile_addresses_on_the_suppression_list_get_4xx_and_record_nothing(
    app, redis_client, redis_prefix
):
    for address in HOSTILE_ADDRESSES + ["", "a" * 300 + "@example.org", "%00", "../etc"]:
        path = "/suppressions/" + quote(address, safe="")
        for method in ("put", "get", "delete"):
            response = getattr(app, method)(path, expect_errors=True)
            assert response.status_int in (400, 404), (address, method, response.status)
            assert response.json["status"] == "error"
    for query in ("reason=x", "reason=manual%0A", "limit=-1", "limit=1e3", "cursor=" + "a" * 500):
        assert app.get("/suppressions?" + query, expect_errors=True).status_int == 400, query
    assert sorted(redis_client.scan_iter(match=redis_prefix + "supp:*")) == []
