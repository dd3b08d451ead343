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

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, dict(self.headers)))
        self._answer(202, {"id": "abc", "status": "queued", "total": 1, "status_url": ""})

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


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ana@example.org", "ana@example.org"),
        ("Ána Dupont <ana@example.org>", {"email": "ana@example.org", "name": "Ána Dupont"}),
        ('"Dupont, Ána" <ana@example.org>', {"email": "ana@example.org", "name": "Dupont, Ána"}),
        ("<ana@example.org>", "ana@example.org"),
    ],
)
def test_to_takes_an_address_or_a_name_and_an_address(text, expected):
    assert client.recipient(text) == expected


def test_a_csv_row_is_a_recipient_and_its_other_columns_its_vars(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("email,name,order,city\na@example.org,Ána,12,Lyon\nb@example.org,,13,\n")
    assert client.read_recipients_csv(str(path)) == [
        {"email": "a@example.org", "name": "Ána", "vars": {"order": "12", "city": "Lyon"}},
        {"email": "b@example.org", "vars": {"order": "13", "city": ""}},
    ]


@pytest.mark.parametrize(
    "text, message",
    [("name,order\nÁna,12\n", "'email' column"), ("email\na@example.org,extra\n", "row 2")],
)
def test_a_csv_without_email_or_with_extra_fields_is_a_usage_error(tmp_path, text, message):
    path = tmp_path / "rows.csv"
    path.write_text(text)
    with pytest.raises(client.ClientError, match=message) as caught:
        client.read_recipients_csv(str(path))
    assert caught.value.exit_status == client.EXIT_USAGE


def test_content_dash_reads_standard_input(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("Texte\n"))
    args = client.parser().parse_args(["send", "--to", "a@example.org", "--subject", "s",
                                       "--content", "-"])  # fmt: skip
    assert client.read_content(args) == "Texte\n"


def test_send_needs_a_recipient(capsys):
    with pytest.raises(SystemExit) as caught:
        client.main(["send", "--subject", "s", "--content", "x"])
    assert caught.value.code == 2
    assert "--to, --vars-csv" in capsys.readouterr().err


def test_broadcast_makes_a_broadcast_job():
    args = ["send", "--to", "a@example.org", "--subject", "S", "--content", "x"]
    assert "stream" not in client.job_payload(client.parser().parse_args(args))
    payload = client.job_payload(client.parser().parse_args([*args, "--broadcast"]))
    assert payload["stream"] == "broadcast"


def test_the_idempotency_key_is_sent_as_a_quoted_string_with_the_post_only(recorder, capsys):
    url = f"http://127.0.0.1:{recorder.server_address[1]}"
    argv = ["send", "--to", "ana@example.org", "--subject", "s", "--content", "c"]
    argv += ["--url", url, "--idempotency-key", 'order "1234" \\ a', "--wait"]
    assert client.main(argv) == 0
    assert json.loads(capsys.readouterr().out) == {"id": "abc", "status": "sent"}
    (post, posted), (get, polled) = [(p, h) for p, h in _Recorder.seen if p != "/spore"]
    assert post == "/email" and posted["Idempotency-Key"] == '"order \\"1234\\" \\\\ a"'
    assert get == "/email/abc" and "Idempotency-Key" not in polled


def test_the_quoted_key_reads_back_as_the_key():
    from emailsvc.api.idempotency import parse_key

    assert parse_key(client.sf_string('order "1234" \\ a')) == 'order "1234" \\ a'
