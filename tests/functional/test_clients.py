"""Clients built from the live descriptions: britney from /spore, the emailsvc-client CLI."""

import email
import email.policy
import json
import os
import subprocess
import sys

import britney
import jsonschema
import pytest
import requests
from britney.middleware.format import Json

from ..harness import free_port, wait_for
from ..test_openapi import response_schema

FINAL = {"sent", "partially_failed", "failed", "cancelled"}
CLIENT = os.path.join(os.path.dirname(sys.executable), "emailsvc-client")


def spore_client(url):
    client = britney.spyre(url + "/spore")
    client.enable(Json)
    return client


def test_britney_sends_a_job_and_follows_it_to_the_end(live_service):
    client = spore_client(live_service.url)
    payload = {
        "recipients": ["ana@example.org", "reject-me@example.org"],
        "subject": "Réunion",
        "content": "Bonjour",
    }
    accepted = client.send_email(payload=payload)
    assert accepted.status_code == 202 and accepted.data["total"] == 2

    def final_status():
        doc = client.get_email_status(task_id=accepted.data["id"]).data
        return doc if doc["status"] in FINAL else None

    doc = wait_for(final_status, 60, interval=0.2)
    assert doc, "the job did not end"
    assert (doc["status"], doc["sent"], doc["failed"]) == ("partially_failed", 1, 1)
    assert doc["errors"][0]["code"] == 550
    [(_, rcpt_tos, message)] = live_service.smtp.messages
    assert rcpt_tos == ["ana@example.org"] and message["Subject"] == "Réunion"


def test_britney_gets_the_400_details_of_a_bad_request(live_service):
    client = spore_client(live_service.url)
    payload = {"recipients": ["not-an-address"], "subject": "x", "content": "y"}
    # 400 is in send_email's expected_status, so britney hands the answer back.
    response = client.send_email(payload=payload)
    assert response.status_code == 400
    [error] = response.data["errors"]
    assert (error["location"], error["name"]) == ("body", "recipients.0")
    assert "Invalid email address" in error["description"]


def test_britney_reports_an_unknown_job_as_404(live_service):
    response = spore_client(live_service.url).get_email_status(task_id="0" * 32)
    assert response.status_code == 404 and response.data["status"] == "error"


def test_base_url_is_this_server_as_the_trusted_proxy_forwards_it(live_service):
    direct = requests.get(live_service.url + "/spore", timeout=5).json()
    assert direct["base_url"] == live_service.url
    headers = {"X-Forwarded-Host": "mail.example.net", "X-Forwarded-Proto": "https"}
    proxied = requests.get(live_service.url + "/spore", headers=headers, timeout=5).json()
    assert proxied["base_url"] == "https://mail.example.net"


def test_real_responses_of_the_running_service_match_their_declared_schemas(live_service):
    url = live_service.url
    spec = requests.get(url + "/openapi.json", timeout=5).json()
    body = {"recipients": ["ana@example.org"], "subject": "Hello", "content": "Hi"}
    accepted = requests.post(url + "/email", json=body, timeout=5)
    assert accepted.status_code == 202, (accepted.status_code, accepted.text[:500])
    task = accepted.json()["id"]
    done = wait_for(
        lambda: (
            (d := requests.get(f"{url}/email/{task}", timeout=5).json())["status"] in FINAL and d
        ),
        60,
        interval=0.2,
    )
    assert done and done["finished_at"] is not None
    answers = [
        ("/email", "post", accepted),
        ("/email/{task_id}", "get", requests.get(f"{url}/email/{task}", timeout=5)),
        ("/email/{task_id}", "get", requests.get(f"{url}/email/{'0' * 32}", timeout=5)),
        ("/email", "post", requests.post(url + "/email", json={"subject": 1}, timeout=5)),
    ]
    assert [a.status_code for _, _, a in answers] == [202, 200, 404, 400]
    for path, method, answer in answers:
        jsonschema.validate(answer.json(), response_schema(spec, path, method, answer.status_code))


def run_client(*args, env=None, stdin=None):
    return subprocess.run(
        [CLIENT, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, **(env or {})),
        input=stdin,
    )


@pytest.fixture
def content_file(tmp_path):
    path = tmp_path / "body.txt"
    path.write_text("Bonjour,\nÀ lundi.\n", encoding="utf-8")
    return str(path)


def test_cli_send_wait_exits_0_when_every_message_is_sent(live_service, content_file):
    result = run_client(
        "send", "--url", live_service.url, "--to", "a@example.org", "--to", "b@example.org",
        "--subject", "Réunion", "--content-file", content_file, "--template", "default",
        "--wait", "--interval", "0.2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "sent"
    assert "2/2 sent, 0 failed" in result.stderr and "[####" in result.stderr
    received = sorted(r for _, rcpts, _ in live_service.smtp.messages for r in rcpts)
    assert received == ["a@example.org", "b@example.org"]


def test_cli_send_wait_exits_1_when_some_recipients_fail(live_service, content_file):
    result = run_client(
        "send", "--url", live_service.url, "--to", "a@example.org", "--to",
        "reject@example.org", "--subject", "x", "--content-file", content_file, "--wait",
        "--interval", "0.2",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["status"] == "partially_failed"
    assert "1/2 sent, 1 failed" in result.stderr


def test_cli_exits_2_with_the_server_messages_for_a_refused_request(live_service, content_file):
    result = run_client(
        "send", "--url", live_service.url, "--to", "a@example.org", "--to", "nope",
        "--subject", "x", "--content-file", content_file, "--template", "no-such-template",
    )  # fmt: skip
    assert result.returncode == 2
    assert "body recipients.1: Invalid email address" in result.stderr
    assert "body template: Unknown template" in result.stderr
    assert live_service.smtp.messages == []


def test_cli_exits_2_on_usage_errors(live_service):
    result = run_client("send", "--url", live_service.url, "--subject", "x", "--content", "y")
    assert result.returncode == 2 and "--to" in result.stderr


def test_cli_status_prints_the_status_document(live_service):
    job = requests.post(
        live_service.url + "/email",
        json={"recipients": ["a@example.org"], "subject": "s", "content": "c"},
        timeout=5,
    ).json()
    result = run_client("status", job["id"], env={"EMAILSVC_URL": live_service.url})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == job["id"]
    missing = run_client("status", "0" * 32, "--url", live_service.url)
    assert missing.returncode == 2 and "path task_id: No job with id" in missing.stderr


def test_cli_reads_content_from_stdin_and_sends_the_api_key(live_service):
    result = run_client(
        "send", "--url", live_service.url, "--to", "a@example.org", "--subject", "s",
        "--content-file", "-", "--wait", "--interval", "0.2",
        env={"EMAILSVC_API_KEY": "k3y"}, stdin="Texte venu de stdin\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [(_, _, message)] = live_service.smtp.messages
    assert "Texte venu de stdin" in message.get_content()


def test_cli_reports_an_unreachable_service_with_exit_1(tmp_path):
    result = run_client("status", "0" * 32, "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1 and "cannot read the SPORE description" in result.stderr


@pytest.fixture
def personal_settings(settings, tmp_path):
    """Templates that use a recipient's name and vars; anonymous may send from example.net."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "default.txt").write_text("${content}\n", encoding="utf-8")
    (templates / "order.txt").write_text(
        "Bonjour ${name}, commande ${order}.\n${content}\n", encoding="utf-8"
    )
    settings["emailsvc.template_dir"] = str(templates)
    settings["emailsvc.senders.anonymous"] = "example.net"
    return settings


def test_cli_sends_to_each_csv_row_with_its_columns_as_vars_from_a_chosen_sender(
    personal_settings, live_service, tmp_path
):
    rows = tmp_path / "recipients.csv"
    rows.write_text("email,name,order\nana@example.org,Ána,1234\nbo@example.org,,5678\n")
    result = run_client(
        "send", "--url", live_service.url, "--vars-csv", str(rows), "--from",
        "news@example.net", "--subject", "Commande", "--template", "order", "--content", "-",
        "--wait", "--interval", "0.2", stdin="À bientôt\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    bodies = {
        rcpts[0]: (message["From"], message.get_content())
        for _, rcpts, message in live_service.smtp.messages
    }
    assert bodies["ana@example.org"][0].addresses[0].addr_spec == "news@example.net"
    assert "Bonjour Ána, commande 1234." in bodies["ana@example.org"][1]
    assert "Bonjour , commande 5678." in bodies["bo@example.org"][1]
    assert all("À bientôt" in body for _, body in bodies.values())


def test_cli_to_takes_a_display_name(live_service):
    result = run_client(
        "send", "--url", live_service.url, "--to", "Cé Dupont <ce@example.org>", "--to",
        "plain@example.org", "--subject", "s", "--content", "x", "--wait", "--interval", "0.2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    to = sorted(str(message["To"]) for _, _, message in live_service.smtp.messages)
    assert to == ["Cé Dupont <ce@example.org>", "plain@example.org"]


def run_in_terminal(args, columns=100, rows=24):
    """Run emailsvc-client with its standard error on a pseudo-terminal.

    Returns (exit status, standard output, the terminal's screen at the end as lines).
    """
    import fcntl
    import pty
    import struct
    import termios

    import pyte

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    process = subprocess.Popen(
        [CLIENT, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=dict(os.environ, TERM="xterm-256color"),
    )
    os.close(slave)
    output = bytearray()
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other end closed with the process
            break
        if not data:
            break
        output += data
    os.close(master)
    stdout = process.communicate(timeout=60)[0].decode()
    screen = pyte.Screen(columns, rows)
    pyte.ByteStream(screen).feed(bytes(output))
    return process.returncode, stdout, [line.rstrip() for line in screen.display if line.strip()]


def test_cli_progress_bar_redraws_cleanly_on_a_terminal(live_service):
    status, stdout, screen = run_in_terminal(
        ["send", "--url", live_service.url, "--to", "a@example.org", "--to", "b@example.org",
         "--subject", "s", "--content", "x", "--wait", "--interval", "0.05"]
    )  # fmt: skip
    assert status == 0 and json.loads(stdout)["status"] == "sent"
    # One line is left: the bar at its final state, with nothing of the earlier ones.
    [line] = screen
    assert line.startswith("sent ") and "2/2" in line and line.endswith("sent 2, failed 0")
    assert "queued" not in line and "sending" not in line and "senting" not in line


def test_cli_sends_html_attachments_copies_and_headers(live_service, tmp_path):
    html = tmp_path / "body.html"
    html.write_text("<p>Bonjour <b>à tous</b></p>", encoding="utf-8")
    report = tmp_path / "relevé.pdf"
    report.write_bytes(b"%PDF-1.4 data")
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"notes\n")
    result = run_client(
        "send", "--url", live_service.url, "--to", "a@example.org", "--subject", "Rapport",
        "--content", "Bonjour à tous", "--html-file", str(html), "--attach", str(report),
        "--attach", str(notes), "--cc", "Chef <chef@example.org>", "--bcc", "archive@example.org",
        "--reply-to", "support@example.org", "--header", "X-Campaign=spring",
        "--wait", "--interval", "0.2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [(_, rcpts, msg)] = live_service.smtp.messages
    assert rcpts == ["a@example.org", "chef@example.org", "archive@example.org"]
    assert msg["Cc"].addresses[0].display_name == "Chef"
    assert msg["Reply-To"].addresses[0].addr_spec == "support@example.org"
    assert msg["X-Campaign"] == "spring"
    assert "<b>à tous</b>" in msg.get_body(("html",)).get_content()
    files = {
        p.get_filename(): (p.get_content_type(), p.get_payload(decode=True))
        for p in msg.iter_attachments()
    }
    assert files == {
        "relevé.pdf": ("application/pdf", b"%PDF-1.4 data"),
        "notes.txt": ("text/plain", b"notes\n"),
    }


def test_cli_render_prints_the_mime_and_sends_nothing(live_service, tmp_path):
    html = tmp_path / "body.html"
    html.write_text('<p>Voir <a href="https://example.org">le site</a></p>', encoding="utf-8")
    result = run_client(
        "render", "--url", live_service.url, "--to", "a@example.org", "--to", "b@example.org",
        "--subject", "Aperçu", "--html-file", str(html), "--recipient", "1",
        "--header", "X-Campaign=spring",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    msg = email.message_from_string(result.stdout, policy=email.policy.default)
    assert msg["To"].addresses[0].addr_spec == "b@example.org"
    assert msg["Subject"] == "Aperçu" and msg["X-Campaign"] == "spring"
    text = msg.get_body(("plain",)).get_content()
    assert "Voir le site (https://example.org)" in text
    bad = run_client(
        "render", "--url", live_service.url, "--to", "a@example.org", "--subject", "x",
        "--content", "y", "--header", "Bcc=evil@evil.org",
    )  # fmt: skip
    assert bad.returncode == 2 and "headers: Header Bcc is set by the service" in bad.stderr
    assert live_service.smtp.messages == []
