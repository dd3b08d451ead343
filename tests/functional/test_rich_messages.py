"""Messages with HTML, attachments, inline images, cc and bcc, through the whole stack:
the app, a real Redis, a real Celery worker and aiosmtpd."""

import base64
import json

import webtest

from emailsvc import main
from emailsvc.jobs.tasks import START_JOB
from tests.harness import post_job, wait_job_final

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
CSV = "nom;montant\nZoë;12,50\n".encode()


def b64(data):
    return base64.b64encode(data).decode()


def crlf(text):
    return text.replace("\r\n", "\n")


def rich_job(recipients):
    return {
        "recipients": recipients,
        "subject": "Votre commande",
        "content": "Bonjour,\nvoici votre commande.",
        "html": '<p>Bonjour, voici <b>votre commande</b>.</p><img src="cid:logo@shop" alt="logo">',
        "reply_to": "support@example.com",
        "headers": {"X-Campaign": "spring-2026", "List-Unsubscribe": "<mailto:u@example.com>"},
        "attachments": [
            {"filename": "facture.pdf", "content_type": "application/pdf", "content": b64(PDF)},
            {"filename": "relevé été.csv", "content_type": "text/csv", "content": b64(CSV)},
            {
                "filename": "logo.png",
                "content_type": "image/png",
                "content": b64(PNG),
                "content_id": "logo@shop",
            },
        ],
    }


def test_html_text_attachments_and_an_inline_image_arrive_as_the_right_mime_tree(
    app, smtp_server, start_worker
):
    start_worker()
    recipient = {
        "email": "ana@example.org",
        "name": "Ana",
        "cc": [{"email": "chef@example.org", "name": "Chef"}],
        "bcc": ["archive@example.org"],
    }
    job = post_job(app, rich_job([recipient]))
    assert wait_job_final(app, job["id"])["status"] == "sent"

    [(mail_from, rcpt_tos, msg)] = smtp_server.messages
    # One message: the recipient, its cc and its bcc in the envelope.
    assert rcpt_tos == ["ana@example.org", "chef@example.org", "archive@example.org"]
    # The cc is named in a Cc header; the bcc in no header at all.
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["chef@example.org"]
    headers = "\n".join(f"{k}: {v}" for k, v in msg.items())
    for part in msg.walk():
        headers += "\n".join(f"{k}: {v}" for k, v in part.items())
    assert "archive" not in headers and "Bcc" not in headers
    assert msg["Reply-To"].addresses[0].addr_spec == "support@example.com"
    assert msg["X-Campaign"] == "spring-2026"
    assert msg["List-Unsubscribe"] == "<mailto:u@example.com>"

    tree = [(part.get_content_type(), part.get_filename()) for part in msg.walk()]
    assert tree == [
        ("multipart/mixed", None),
        ("multipart/alternative", None),
        ("text/plain", None),
        ("multipart/related", None),
        ("text/html", None),
        ("image/png", "logo.png"),
        ("application/pdf", "facture.pdf"),
        ("text/csv", "relevé été.csv"),
    ]
    # The non-ASCII filename travelled as an RFC 2231 parameter.
    assert "filename*=utf-8''relev%C3%A9%20%C3%A9t%C3%A9.csv" in msg.as_string()

    text = msg.get_body(("plain",))
    assert crlf(text.get_content()).startswith("Bonjour,\nvoici votre commande.\n")
    html = msg.get_body(("html",)).get_content()
    assert '<p>Bonjour, voici <b>votre commande</b>.</p><img src="cid:logo@shop"' in html
    attachments = {part.get_filename(): part for part in msg.iter_attachments()}
    assert attachments["facture.pdf"].get_content() == PDF
    assert attachments["relevé été.csv"].get_payload(decode=True) == CSV
    # The cid: reference resolves to the inline image of the related part.
    related = next(p for p in msg.walk() if p.get_content_type() == "multipart/related")
    [image] = [p for p in related.iter_parts() if p["Content-ID"] == "<logo@shop>"]
    assert image.get_content() == PNG
    assert image.get_content_disposition() == "inline"


def test_html_alone_gets_a_readable_text_part(app, smtp_server, start_worker):
    start_worker()
    body = {
        "recipients": ["ana@example.org"],
        "subject": "Nouveautés",
        "html": '<h1>Nouveautés</h1><p>Lisez <a href="https://example.org/news">le blog</a>'
        "<br>et à bientôt.</p><script>track()</script>",
    }
    job = post_job(app, body)
    assert wait_job_final(app, job["id"])["status"] == "sent"
    [(_, _, msg)] = smtp_server.messages
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]
    text = crlf(msg.get_body(("plain",)).get_content())
    assert text.startswith("Nouveautés\n\nLisez le blog (https://example.org/news)\net à bientôt.")
    assert "<p" not in text and "<h1" not in text and "track()" not in text
    # The default template's signature follows the text.
    assert text.endswith("\nÉquipe emailsvc <noreply@example.com>\n")


def test_vars_are_escaped_in_html_literal_in_text_and_template_syntax_stays_data(
    settings, smtp_server, start_worker, tmp_path
):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "order.txt").write_text("Order ${order} for ${name}\n${content}\n")
    (templates / "order.pt").write_text(
        "<html><body><p>Order ${order} for ${name}</p>${structure: html}</body></html>"
    )
    (templates / "order.subject.txt").write_text("${subject} n° ${order}")
    settings["emailsvc.template_dir"] = str(templates)
    app = webtest.TestApp(main({}, **settings))
    start_worker()
    hostile = "<script>alert(1)</script>"
    body = {
        "recipients": [
            {"email": "ana@example.org", "name": "<b>Ana</b>", "vars": {"order": hostile}}
        ],
        "subject": "Commande",
        "template": "order",
        "content": "Text ${order} ${import('os')}",
        "html": "<p>Markup ${order} <i>kept</i></p>",
    }
    job = post_job(app, body)
    assert wait_job_final(app, job["id"])["status"] == "sent"
    [(_, _, msg)] = smtp_server.messages
    html = msg.get_body(("html",)).get_content()
    assert "<p>Order &lt;script&gt;alert(1)&lt;/script&gt; for &lt;b&gt;Ana&lt;/b&gt;</p>" in html
    assert "<script>" not in html
    # The job's html is the client's markup, inserted as is, its ${...} literally.
    assert "<p>Markup ${order} <i>kept</i></p>" in html
    text = crlf(msg.get_body(("plain",)).get_content())
    assert text == f"Order {hostile} for <b>Ana</b>\nText ${{order}} ${{import('os')}}\n"
    # The template gave the subject, for this recipient.
    assert msg["Subject"] == f"Commande n° {hostile}"


def test_a_10_mb_attachment_is_stored_once_and_never_travels_in_a_broker_message(
    app, redis_client, redis_prefix
):
    big = bytes(range(256)) * (10 * 1024 * 1024 // 256)
    recipients = [f"user{i}@example.org" for i in range(1000)]
    body = {
        "recipients": recipients,
        "subject": "Catalogue",
        "content": "Ci-joint.",
        "attachments": [
            {"filename": "catalogue.pdf", "content_type": "application/pdf", "content": b64(big)}
        ],
    }
    job = post_job(app, body)
    assembly = app.app.registry.emailsvc
    # The start task, run here as a worker runs it: it publishes the job's chunks.
    assembly.celery.tasks[START_JOB].run(job["id"])

    # The queue's list: Celery's key prefix before the queue's name.
    queue = redis_prefix + assembly.settings["emailsvc.queue"]
    messages = redis_client.lrange(queue, 0, -1)
    # The start message and 20 chunks of 50: each carries ids and offsets only.
    assert len(messages) == 21
    assert max(len(message) for message in messages) < 4096
    assert sum(len(message) for message in messages) < 50_000
    # The attachment is in Redis once, beside the job, with the job's TTL.
    content_key = f"{redis_prefix}job:{job['id']}:content"
    stored = json.loads(redis_client.get(content_key))
    assert base64.b64decode(stored["attachments"][0]["content"]) == big
    assert 0 < redis_client.ttl(content_key) <= assembly.settings["emailsvc.job_ttl_seconds"]
    job_keys = list(redis_client.scan_iter(match=f"{redis_prefix}job:{job['id']}*"))
    large = [key for key in job_keys if redis_client.memory_usage(key) > 1024 * 1024]
    assert large == [content_key]
