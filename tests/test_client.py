"""emailsvc-client's pieces that need no emailsvc: the progress bar and the API key header."""

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from emailsvc.cli import client

from .harness import ROOT


class _Recorder(BaseHTTPRequestHandler):
    """Serves spore.json with this server as base_url and records each request's headers."""

    seen = []

    def do_GET(self):
        self.seen.append((self.path, dict(self.headers)))
        if self.path == "/spore":
            with open(f"{ROOT}/spore.json", encoding="utf-8") as handle:
                description = json.load(handle)
            host, port = self.server.server_address
            description["base_url"] = f"http://{host}:{port}"
            self._answer(200, description)
        else:
            self._answer(200, {"id": self.path.rsplit("/", 1)[-1], "status": "sent"})

    def _answer(self, status, document):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_api_key_is_sent_as_a_bearer_token(recorder, capsys):
    url = f"http://127.0.0.1:{recorder.server_address[1]}"
    assert client.main(["status", "abc", "--url", url, "--api-key", "s3cret"]) == 0
    assert json.loads(capsys.readouterr().out) == {"id": "abc", "status": "sent"}
    [(path, headers)] = [(p, h) for p, h in _Recorder.seen if p != "/spore"]
    assert path == "/email/abc" and headers["Authorization"] == "Bearer s3cret"


def test_without_a_key_no_authorization_is_sent(recorder, monkeypatch, capsys):
    monkeypatch.delenv("EMAILSVC_API_KEY", raising=False)
    url = f"http://127.0.0.1:{recorder.server_address[1]}"
    assert client.main(["status", "abc", "--url", url]) == 0
    assert all("Authorization" not in headers for _, headers in _Recorder.seen)


@pytest.mark.parametrize(
    "doc, expected",
    [
        (
            {"total": 4, "sent": 1, "failed": 1, "status": "sending"},
            "[#####-----] 1/4 sent, 1 failed",
        ),
        (
            {"total": 2, "sent": 2, "failed": 0, "status": "sent"},
            "[##########] 2/2 sent, 0 failed",
        ),
    ],
)
def test_the_progress_bar_counts_sent_and_failed_of_total(doc, expected):
    assert client.progress_line(doc, width=10).startswith(expected)


def test_error_messages_name_the_field():
    doc = {"errors": [{"location": "body", "name": "subject", "description": "Required"}]}
    assert client.error_messages(doc) == ["body subject: Required"]
    with pytest.raises(client.ClientError) as caught:
        client.fail_with(400, doc)
    assert caught.value.exit_status == client.EXIT_USAGE
    assert "body subject: Required" in str(caught.value)
    with pytest.raises(client.ClientError) as caught:
        client.fail_with(503, {"errors": []})
    assert caught.value.exit_status == client.EXIT_FAILED


def test_waiting_prints_one_line_per_change_when_not_a_terminal(monkeypatch):
    docs = iter(
        [
            {"total": 2, "sent": 0, "failed": 0, "status": "queued"},
            {"total": 2, "sent": 0, "failed": 0, "status": "queued"},
            {"total": 2, "sent": 2, "failed": 0, "status": "sent"},
        ]
    )
    monkeypatch.setattr(client, "call", lambda *a, **k: (200, next(docs)))
    stream = io.StringIO()
    final = client.wait_for_job(None, "abc", 0, stream)
    assert final["status"] == "sent"
    assert stream.getvalue().count("\n") == 2
