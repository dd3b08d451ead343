"""Transports against a real SMTP server (aiosmtpd) and a real folder."""

import smtplib
import socket
import ssl
import subprocess
import threading

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from emailsvc.mail.messages import build_message, sender_address
from emailsvc.mail.transports import (
    ConnectionLost,
    DeliveryError,
    OutboxTransport,
    SMTPTransport,
    transport_from_settings,
)
from emailsvc.settings import SettingsError, load
from tests.harness import RecordingHandler, SMTPServer, free_port

SENDER = sender_address("noreply@example.com")


def message(to):
    return build_message(SENDER, {"email": to}, "Subject", "Body")


def smtp(port):
    return SMTPTransport(load({"emailsvc.smtp.host": "127.0.0.1", "emailsvc.smtp.port": port}, {}))


def test_one_session_delivers_several_messages(smtp_server):
    with smtp(smtp_server.port).session() as session:
        for to in ("a@example.org", "b@example.org"):
            session.send(message(to), "noreply@example.com", to)
    assert [rcpts for _, rcpts, _ in smtp_server.messages] == [
        ["a@example.org"],
        ["b@example.org"],
    ]


def test_a_550_fails_that_recipient_for_good_and_the_session_goes_on(smtp_server):
    with smtp(smtp_server.port).session() as session:
        with pytest.raises(DeliveryError) as refused:
            session.send(
                message("reject@example.org"), "noreply@example.com", "reject@example.org"
            )
        session.send(message("ok@example.org"), "noreply@example.com", "ok@example.org")
    assert refused.value.code == 550 and refused.value.permanent
    assert "No such user" in refused.value.message
    assert len(smtp_server.messages) == 1


def test_a_4xx_is_transient(smtp_server):
    with smtp(smtp_server.port).session() as session:
        with pytest.raises(DeliveryError) as busy:
            session.send(message("busy@example.org"), "noreply@example.com", "busy@example.org")
    assert busy.value.code == 451 and not busy.value.permanent


@pytest.fixture(params=[True, False], ids=["pipelining", "one-command-at-a-time"])
def any_relay(request):
    """A relay that offers PIPELINING, and one that does not."""
    server = SMTPServer(pipelining=request.param).start()
    yield server
    server.stop()


def raw(to, body="Body"):
    return message(to).as_bytes().replace(b"\r\n\r\nBody", b"\r\n\r\n" + body.encode())


def test_bytes_go_out_as_they_are_with_refusals_as_for_a_message(any_relay):
    body = ".leading dot\r\n..two\r\nlast line without end"
    with smtp(any_relay.port).session() as session:
        session.send(raw("a@example.org", body), "noreply@example.com", ["a@example.org"])
        with pytest.raises(DeliveryError) as refused:
            session.send(raw("reject@example.org"), "noreply@example.com", "reject@example.org")
        with pytest.raises(DeliveryError) as busy:
            session.send(raw("busy@example.org"), "noreply@example.com", "busy@example.org")
        # A cc refused alone does not fail the recipient.
        session.send(
            raw("b@example.org"), "noreply@example.com", ["b@example.org", "reject@x.org"]
        )
        with pytest.raises(ConnectionLost) as gone:
            session.send(raw("gone@example.org"), "noreply@example.com", "gone@example.org")
    assert (refused.value.code, refused.value.permanent) == (550, True)
    assert (busy.value.code, busy.value.permanent) == (451, False)
    assert gone.value.code == 421
    received = any_relay.messages
    assert [rcpts for _, rcpts, _ in received] == [["a@example.org"], ["b@example.org"]]
    content = received[0][2].get_content().replace("\r\n", "\n")
    assert content == body.replace("\r\n", "\n") + "\n"


def test_a_message_is_not_handed_over_when_its_before_data_step_fails(any_relay):
    class RecordLost(Exception):
        pass

    def lost():
        raise RecordLost()

    with pytest.raises(RecordLost):
        with smtp(any_relay.port).session() as session:
            session.send(raw("a@example.org"), "noreply@example.com", "a@example.org", None, lost)
    with smtp(any_relay.port).session() as session:
        session.send(raw("b@example.org"), "noreply@example.com", "b@example.org")
    assert [rcpts for _, rcpts, _ in any_relay.messages] == [["b@example.org"]]


def test_a_relay_offering_pipelining_gets_mail_rcpt_and_data_in_one_write():
    # A relay of a few lines that notes what each read brought.
    listener = socket.create_server(("127.0.0.1", 0))
    reads = []

    def serve():
        connection, _ = listener.accept()
        with connection:
            connection.sendall(b"220 test\r\n")
            while True:
                data = connection.recv(65536)
                reads.append(data)
                if data.upper().startswith(b"EHLO"):
                    connection.sendall(b"250-test\r\n250-PIPELINING\r\n250 SIZE 1000000\r\n")
                elif data.startswith(b"MAIL"):
                    connection.sendall(b"250 ok\r\n" * (data.count(b"\r\n") - 1) + b"354 go\r\n")
                elif data.endswith(b"\r\n.\r\n"):
                    connection.sendall(b"250 queued\r\n")
                elif data.upper().startswith(b"QUIT") or not data:
                    connection.sendall(b"221 bye\r\n")
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    data = raw("a@example.org")
    with smtp(listener.getsockname()[1]).session() as session:
        session.send(data, "noreply@example.com", ["a@example.org", "c@x.org"])
    thread.join(5)
    listener.close()
    size = len(data)
    assert (
        reads[1]
        == (
            f"MAIL FROM:<noreply@example.com> SIZE={size}\r\n"
            "RCPT TO:<a@example.org>\r\nRCPT TO:<c@x.org>\r\nDATA\r\n"
        ).encode()
    )
    assert reads[2].endswith(b"\r\n\r\nBody\r\n.\r\n")


def test_an_unreachable_relay_is_a_lost_connection():
    with pytest.raises(ConnectionLost):
        with smtp(free_port()).session():
            pass


def test_outbox_writes_one_eml_file_per_message(tmp_path):
    transport = OutboxTransport(load({"emailsvc.outbox_dir": str(tmp_path / "out")}, {}))
    with transport.session() as session:
        session.send(message("a@example.org"), "noreply@example.com", "a@example.org")
        session.send(message("b@example.org"), "noreply@example.com", "b@example.org")
    files = sorted((tmp_path / "out").iterdir())
    assert len(files) == 2 and all(f.suffix == ".eml" for f in files)
    assert b"To: a@example.org" in b"".join(f.read_bytes() for f in files)


def test_an_unknown_transport_is_a_configuration_error():
    with pytest.raises(SettingsError, match="one of smtp, outbox"):
        transport_from_settings(load({"emailsvc.mail.transport": "pigeon"}, {}))


@pytest.fixture
def tls_relay(tmp_path, monkeypatch):
    """An aiosmtpd relay offering STARTTLS (a certificate for 127.0.0.1) and requiring AUTH."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    # The client trusts this certificate as it would a public one: through the default paths.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    logins = []

    def authenticate(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password, session.ssl is not None))
        return AuthResult(success=True)

    port = free_port()
    controller = Controller(
        RecordingHandler(),
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        authenticator=authenticate,
        auth_required=True,
    )
    controller.start()
    yield port, logins
    controller.stop()


def relay_transport(port, **overrides):
    values = {
        "emailsvc.smtp.host": "127.0.0.1",
        "emailsvc.smtp.port": str(port),
        "emailsvc.smtp.starttls": "true",
        "emailsvc.smtp.username": "relay-user",
        "emailsvc.smtp.password": "relay-password",
        **overrides,
    }
    return SMTPTransport(load(values, {}))


def test_the_check_connects_as_delivery_does_with_starttls_and_login(tls_relay):
    port, logins = tls_relay
    relay_transport(port).check(timeout=5)
    # Logged in over TLS, with the configured credentials, exactly as a delivery session.
    assert logins == [(b"relay-user", b"relay-password", True)]
    with relay_transport(port).session() as session:
        session.send(message("a@example.org"), "noreply@example.com", "a@example.org")
    assert len(logins) == 2


def test_the_check_fails_where_delivery_would_fail_without_tls(tls_relay):
    port, logins = tls_relay
    # Without STARTTLS this relay offers no AUTH: the check fails as delivery would.
    with pytest.raises(smtplib.SMTPNotSupportedError):
        relay_transport(port, **{"emailsvc.smtp.starttls": "false"}).check(timeout=5)
    assert logins == []


def test_the_outbox_check_writes_nothing_it_leaves_behind(tmp_path):
    OutboxTransport(load({"emailsvc.outbox_dir": str(tmp_path / "out")}, {})).check(timeout=1)
    assert list((tmp_path / "out").iterdir()) == []
