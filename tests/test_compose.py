"""Building a job's messages (mail.compose), its text from HTML, its PDFs' confinement."""

import base64
import gc
import json
import time
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from emailsvc.mail.compose import Composer, dump_content, load_content, pdf_filename
from emailsvc.mail.html_text import html_to_text
from emailsvc.mail.messages import sender_address
from emailsvc.mail.pdf import _time_limit, pdf_renderer
from emailsvc.mail.templates import RenderError, Templates
from emailsvc.mail.transports import OutboxTransport
from emailsvc.settings import SettingsError, load

SENDER = sender_address("noreply@example.com", "Équipe")
DATE = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
JOB = {"subject": "S", "content": "Bonjour", "template": "default"}
ANA = {"email": "ana@example.org", "name": "Ana", "vars": {"order": "42"}}


def composer(body, templates=None, pdf=None):
    content = load_content(dump_content(body))
    job = dict(JOB, content=body.get("content", ""), template=body.get("template", "default"))
    return Composer(templates or Templates(), job, content, SENDER, DATE, pdf)


def test_html_to_text_keeps_links_paragraphs_and_lists_and_drops_tags():
    html = (
        "<html><head><title>T</title><style>p{}</style></head><body>"
        "<h1>Titre</h1><p>Voir <a href='https://x.org/a'>le site</a> &amp; "
        "<a href='mailto:a@x.org'>a@x.org</a>.</p><ul><li>un</li><li>deux</li></ul>"
        "<p>ligne<br>suivante <img src='cid:i' alt='logo'></p><script>x()</script></body></html>"
    )
    assert html_to_text(html) == (
        "Titre\n\nVoir le site (https://x.org/a) & a@x.org.\n\n- un\n- deux\n\n"
        "ligne\nsuivante logo\n"
    )
    assert html_to_text("") == ""


def test_a_plain_text_job_stores_nothing_more_and_stays_text_plain():
    assert dump_content({"content": "x", "recipients": [], "subject": "S"}) is None
    msg, _ = composer({"content": "Bonjour"}).compose(ANA, "<1@example.com>")
    assert msg.get_content_type() == "text/plain"
    assert not msg.is_multipart()


def test_pdf_filenames_take_the_recipients_vars_as_text():
    assert pdf_filename("facture-${order}.pdf", {"order": "A/1"}) == "facture-A_1.pdf"
    assert pdf_filename("${a}${a}.pdf", {"a": "${a}"}) == "${a}${a}.pdf"
    with pytest.raises(RenderError, match="order"):
        pdf_filename("facture-${order}.pdf", {})


def test_a_subject_template_that_gives_an_encoded_word_fails_the_recipient(tmp_path):
    (tmp_path / "t.txt").write_text("${content}")
    (tmp_path / "t.subject.txt").write_text("${subject} ${order}")
    templates = Templates(str(tmp_path))
    body = {"content": "x", "template": "t"}
    evil = dict(ANA, vars={"order": "=?utf-8?b?QmNjOiBldmls?="})
    with pytest.raises(RenderError):
        composer(body, templates).compose(evil, "<1@example.com>")
    msg, (subject, _, _) = composer(body, templates).compose(ANA, "<1@example.com>")
    assert subject == "S 42" and msg["Subject"] == "S 42"


def test_the_outbox_writes_rich_messages(tmp_path):
    body = {
        "content": "Bonjour",
        "html": "<p>Bonjour</p>",
        "attachments": [
            {
                "filename": "a.pdf",
                "content_type": "application/pdf",
                "content": base64.b64encode(b"%PDF").decode(),
            }
        ],
    }
    msg, _ = composer(body).compose(dict(ANA, bcc=[{"email": "b@example.org"}]), "<7@example.com>")
    transport = OutboxTransport(load({"emailsvc.outbox_dir": str(tmp_path)}, {}))
    with transport.session() as session:
        session.send(msg, "noreply@example.com", ["ana@example.org", "b@example.org"])
    [written] = list(tmp_path.iterdir())
    parsed = message_from_bytes(written.read_bytes(), policy=policy.default)
    assert [p.get_content_type() for p in parsed.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
    ]
    assert b"b@example.org" not in written.read_bytes()


def test_pdf_templates_load_files_of_their_folder_and_nothing_else(tmp_path):
    (tmp_path / "style.css").write_text("h1 { color: red }")
    (tmp_path / "p.pt").write_text(
        '<html><head><link rel="stylesheet" href="style.css" /></head>'
        "<body><h1>x</h1></body></html>"
    )
    renderer = pdf_renderer(Templates(str(tmp_path)), 10, 10**6)
    fetcher = renderer.fetcher_class(renderer.folder)
    inside = (tmp_path / "style.css").as_uri()
    for url, expected in ((inside, b"h1 { color: red }"), ("data:text/plain,hi", b"hi")):
        response = fetcher.fetch(url)
        assert response.read() == expected
        response.close()
    for url in (
        "file:///etc/passwd",
        f"file://{tmp_path}/../../etc/passwd",
        "file://localhost/etc/passwd",
        "http://127.0.0.1/x.css",
        "https://example.org/x.css",
        "ftp://example.org/x",
    ):
        with pytest.raises(ValueError):
            fetcher.fetch(url)
    assert renderer.render("p", {}).startswith(b"%PDF")


def test_a_pdf_over_its_size_bound_fails_the_recipient(tmp_path):
    (tmp_path / "p.pt").write_text("<html><body><p>x</p></body></html>")
    renderer = pdf_renderer(Templates(str(tmp_path)), 10, 1024)
    with pytest.raises(RenderError, match="larger than 1024 bytes"):
        renderer.render("p", {})


def test_the_body_limit_must_hold_the_largest_attachments():
    with pytest.raises(SettingsError, match="emailsvc.max_body_bytes"):
        load({"emailsvc.max_body_bytes": "4194304"}, {})
    settings = load(
        {"emailsvc.max_body_bytes": "4194304", "emailsvc.max_attachment_bytes": "3000000"}, {}
    )
    assert settings["emailsvc.max_attachment_bytes"] == 3000000


def test_stored_content_is_json():
    stored = dump_content({"content": "x", "html": "<p>é</p>"})
    assert json.loads(stored)["html"] == "<p>é</p>"


# The timer's interruption may land where Python drops it (a ``__del__``), and pytest
# reports the dropped exception; the timer then fires again.
swallowed_interruptions = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning"
)


@swallowed_interruptions
def test_a_pdf_over_its_time_bound_fails_the_recipient(tmp_path):
    rows = "".join(f"<tr><td>{i}</td><td>{'x' * 50}</td></tr>" for i in range(3000))
    (tmp_path / "long.pt").write_text(f"<html><body><table>{rows}</table></body></html>")
    renderer = pdf_renderer(Templates(str(tmp_path)), 0.05, 10**8)
    with pytest.raises(RenderError, match="took longer than 0.05 s"):
        renderer.render("long", {})


@swallowed_interruptions
def test_the_time_bound_holds_when_it_falls_in_a_garbage_collector_callback(tmp_path):
    # Python drops an exception raised in such a callback (hypothesis installs one).
    calls = []

    def slow_once(phase, info):
        # The first collection lasts past the bound: the timer fires in here.
        if phase == "start" and not calls:
            calls.append(phase)
            time.sleep(0.1)

    (tmp_path / "p.pt").write_text("<html><body><p>x</p></body></html>")
    renderer = pdf_renderer(Templates(str(tmp_path)), 0.05, 10**8)
    started = time.monotonic()
    gc.callbacks.append(slow_once)
    try:
        with pytest.raises(RenderError, match="took longer than 0.05 s"):
            with _time_limit(0.05):
                gc.collect()
                while time.monotonic() - started < 5:
                    pass
    finally:
        gc.callbacks.remove(slow_once)
    assert calls and time.monotonic() - started < 1
    assert renderer.render("p", {}).startswith(b"%PDF")
