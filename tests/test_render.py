"""POST /email/render: the message one recipient would get, recorded and sent nowhere."""

import base64
import email
import json
from email import policy

import colander
import pytest
import webtest

from emailsvc import main
from emailsvc.api.schemas import SendEmailRequest
from emailsvc.api.validators import schema_bindings
from tests.test_limits import SHOP_KEY, limited_app

JOB = {
    "recipients": [
        "ana@example.org",
        {"email": "bo@example.org", "name": "Bo", "bcc": ["archive@example.org"]},
    ],
    "subject": "Réunion",
    "content": "Bonjour",
    "html": "<p>Bonjour <a href='https://example.org'>ici</a></p>",
    "attachments": [
        {
            "filename": "C:\\Users\\ana\\Documents\\relevé.pdf",
            "content_type": "application/pdf",
            "content": base64.b64encode(b"%PDF-1.4 x").decode(),
        }
    ],
}


def render(app, body, status=200, **kwargs):
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    return app.post("/email/render", json.dumps(body), headers=headers, status=status, **kwargs)


def test_render_answers_the_recipients_message_and_records_nothing(
    app, redis_client, redis_prefix
):
    doc = render(app, dict(JOB, recipient=1)).json
    assert set(doc) == {"mime", "subject", "text", "html"}
    assert doc["subject"] == "Réunion"
    assert doc["text"].startswith("Bonjour\n")
    assert "<p>Bonjour <a href='https://example.org'>ici</a></p>" in doc["html"]
    msg = email.message_from_string(doc["mime"], policy=policy.default)
    assert msg["To"].addresses[0].addr_spec == "bo@example.org"
    assert "archive" not in doc["mime"]
    [attachment] = list(msg.iter_attachments())
    # The file's name is reduced to its base name.
    assert attachment.get_filename() == "relevé.pdf"
    assert attachment.get_content() == b"%PDF-1.4 x"
    assert list(redis_client.scan_iter(match=redis_prefix + "job*")) == []


def test_render_validates_like_post_email(app):
    errors = render(app, dict(JOB, recipient=2), status=400).json["errors"]
    assert [e["name"] for e in errors] == ["recipient"]
    bad = dict(JOB, headers={"Bcc": "evil@evil.org"})
    errors = render(app, bad, status=400).json["errors"]
    assert [(e["location"], e["name"]) for e in errors] == [("body", "headers")]
    # A field of render only is no field of POST /email.
    response = app.post(
        "/email", json.dumps(dict(JOB, recipient=0)), content_type="application/json", status=400
    )
    assert response.json["errors"][0]["description"] == 'Unknown fields: "recipient"'


def test_a_recipient_the_template_cannot_render_gets_400(settings, tmp_path):
    (tmp_path / "order.txt").write_text("Order ${order}\n")
    app = webtest.TestApp(main({}, **dict(settings, **{"emailsvc.template_dir": str(tmp_path)})))
    body = {"recipients": ["ana@example.org"], "subject": "S", "content": "C", "template": "order"}
    errors = render(app, body, status=400).json["errors"]
    assert errors[0]["name"] == "recipients.0" and "order" in errors[0]["description"]


def test_render_counts_as_a_request_not_as_recipients(settings):
    app = limited_app(
        settings,
        **{
            "emailsvc.limit.requests_per_minute": "2",
            "emailsvc.limit.recipients_per_hour": "1",
        },
    )
    auth = {"Authorization": f"Bearer {SHOP_KEY}"}
    # Two recipients and a bcc: over the hourly recipients, yet rendered.
    render(app, JOB, headers=auth)
    render(app, JOB, headers=auth)
    response = render(app, JOB, status=429, headers=auth)
    assert response.headers["Retry-After"]


def test_cc_and_bcc_count_toward_max_recipients(settings):
    app = webtest.TestApp(main({}, **dict(settings, **{"emailsvc.max_recipients": "3"})))
    body = dict(
        JOB, recipients=[{"email": "a@example.org", "cc": ["b@x.org"], "bcc": ["c@x.org"]}]
    )
    render(app, body)
    body["recipients"].append("d@example.org")
    errors = render(app, body, status=400).json["errors"]
    assert errors == [
        {
            "location": "body",
            "name": "recipients",
            "description": "At most 3 recipients per job, cc and bcc included",
        }
    ]


def test_pdfs_are_refused_when_the_pdf_extra_is_missing(app):
    bindings = dict(schema_bindings(app.app.registry.emailsvc), pdf=False)
    schema = SendEmailRequest().bind(**bindings)
    body = dict(JOB, pdf_attachments=[{"template": "default", "filename": "a.pdf"}])
    with pytest.raises(colander.Invalid) as caught:
        schema.deserialize({"body": body})
    assert caught.value.asdict() == {
        "body.pdf_attachments": "PDF attachments need the pdf extra (pip install "
        "emailsvc[pdf]), which this server does not have"
    }
    # With the extra (this test install has it), the same job is valid.
    assert schema_bindings(app.app.registry.emailsvc)["pdf"] is True
    SendEmailRequest().bind(**dict(bindings, pdf=True)).deserialize({"body": body})


def test_custom_headers_arrive_as_given(app):
    references = " ".join(f"<{i}.thread@example.org>" for i in range(25))
    headers = {"In-Reply-To": "<1.thread@example.org>", "References": references}
    doc = render(app, dict(JOB, headers=headers, recipient=0)).json
    msg = email.message_from_string(doc["mime"], policy=policy.default)
    assert msg["In-Reply-To"] == "<1.thread@example.org>"
    assert msg["References"] == references
    assert max(len(line) for line in doc["mime"].splitlines()) <= 998


def test_attachment_count_and_decoded_size_are_bounded_by_the_settings(settings):
    limits = {"emailsvc.max_attachments": "2", "emailsvc.max_attachment_bytes": "10"}
    app = webtest.TestApp(main({}, **dict(settings, **limits)))
    one = {"filename": "a.txt", "content_type": "text/plain", "content": "YWJjZGU="}  # 5 bytes
    render(app, dict(JOB, attachments=[one, one]))
    errors = render(app, dict(JOB, attachments=[one, one, one]), status=400).json["errors"]
    assert (
        errors[0]["name"] == "attachments" and "At most 2 attachments" in errors[0]["description"]
    )
    six = dict(one, content="YWJjZGVm")  # 6 bytes: 11 together
    errors = render(app, dict(JOB, attachments=[one, six]), status=400).json["errors"]
    assert errors[0]["description"] == "Attachments are larger than 10 bytes (decoded)"


def test_the_default_html_template_escapes_the_subject_and_keeps_the_html(app):
    body = dict(JOB, subject="<i>Soldes</i> & promos", html="<p>Tout <b>-20 %</b></p>")
    doc = render(app, body).json
    assert "<title>&lt;i&gt;Soldes&lt;/i&gt; &amp; promos</title>" in doc["html"]
    assert "<p>Tout <b>-20 %</b></p>" in doc["html"]
    # A layout of tables with inline styles, narrowed on small screens.
    assert 'role="presentation"' in doc["html"] and "@media only screen" in doc["html"]


def test_html_is_bounded_like_content(settings):
    app = webtest.TestApp(main({}, **dict(settings, **{"emailsvc.max_content_bytes": "100"})))
    errors = render(app, dict(JOB, html="<p>" + "é" * 60 + "</p>"), status=400).json["errors"]
    assert errors == [
        {
            "location": "body",
            "name": "html",
            "description": "html is larger than 100 bytes (UTF-8)",
        }
    ]
