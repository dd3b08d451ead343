"""Per-recipient PDFs rendered by a real worker with WeasyPrint, read back with pypdf."""

import http.server
import io
import pathlib
import threading

import pypdf
import pytest
import webtest

from emailsvc import main
from tests.harness import free_port, post_job, wait_job_final


class RecordingHTTPServer:
    """An HTTP server on loopback that records every request it gets (and answers 200)."""

    def __init__(self):
        self.requests = []
        recorded = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                recorded.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/css")
                self.end_headers()
                self.wfile.write(b"body { color: red }")

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_server():
    with RecordingHTTPServer() as server:
        yield server


def pdf_text(data):
    return "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def test_200_recipients_get_200_distinct_pdfs_and_templates_fetch_nothing(
    settings, smtp_server, start_worker, tmp_path, http_server
):
    remote = f"http://127.0.0.1:{http_server.port}"
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "invoice.pt").write_text(
        f"""<html><head>
<link rel="stylesheet" href="{remote}/style.css" />
<style>@import url("{remote}/import.css"); body {{ font-family: sans-serif }}</style>
</head><body>
<h1>Facture ${{order}}</h1>
<p>Client: ${{name}}</p>
<img src="{remote}/logo.png" />
<img src="file:///etc/passwd" />
<object data="file:///etc/passwd"></object>
<iframe src="file:///etc/passwd"></iframe>
<p style="background: url('{remote}/bg.png')">Merci.</p>
</body></html>
""",
        encoding="utf-8",
    )
    (templates / "default.txt").write_text("${content}\n")
    settings["emailsvc.template_dir"] = str(templates)
    app = webtest.TestApp(main({}, **settings))
    start_worker()
    recipients = [
        {"email": f"client{i}@example.org", "name": f"Client {i}", "vars": {"order": f"A{i:04d}"}}
        for i in range(200)
    ]
    body = {
        "recipients": recipients,
        "subject": "Votre facture",
        "content": "Ci-joint votre facture.",
        "pdf_attachments": [{"template": "invoice", "filename": "facture-${order}.pdf"}],
    }
    job = post_job(app, body)
    assert wait_job_final(app, job["id"], timeout=240)["status"] == "sent"

    messages = smtp_server.messages
    assert len(messages) == 200
    seen = set()
    passwd = pathlib.Path("/etc/passwd").read_text(encoding="utf-8").splitlines()[0]
    for _, rcpts, msg in messages:
        index = int(rcpts[0].removeprefix("client").partition("@")[0])
        [attachment] = list(msg.iter_attachments())
        assert attachment.get_content_type() == "application/pdf"
        assert attachment.get_filename() == f"facture-A{index:04d}.pdf"
        data = attachment.get_content()
        text = pdf_text(data)
        assert f"Facture A{index:04d}" in text and f"Client: Client {index}" in text
        assert "root:" not in text and passwd not in text
        seen.add(data)
    assert len(seen) == 200
    # Neither the stylesheets, nor the images, nor anything else was fetched.
    assert http_server.requests == []


def test_a_pdf_template_escapes_vars(settings, smtp_server, start_worker, tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "default.txt").write_text("${content}\n")
    (templates / "card.pt").write_text("<html><body><p>Bonjour ${who}</p></body></html>")
    settings["emailsvc.template_dir"] = str(templates)
    app = webtest.TestApp(main({}, **settings))
    start_worker()
    hostile = '<img src="file:///etc/passwd">&lt;b&gt;'
    body = {
        "recipients": [{"email": "a@example.org", "vars": {"who": hostile}}],
        "subject": "Carte",
        "content": "Ci-joint.",
        "pdf_attachments": [{"template": "card", "filename": "carte.pdf"}],
    }
    job = post_job(app, body)
    assert wait_job_final(app, job["id"])["status"] == "sent"
    [(_, _, msg)] = smtp_server.messages
    [attachment] = list(msg.iter_attachments())
    # The var is text in the PDF, not markup.
    assert hostile in pdf_text(attachment.get_content()).replace("\n", "")
