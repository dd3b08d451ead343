"""Transports against a real SMTP server (aiosmtpd) and a real folder."""

import pytest

from emailsvc.mail.messages import build_message, sender_address
from emailsvc.mail.transports import (
    ConnectionLost,
    DeliveryError,
    OutboxTransport,
    SMTPTransport,
    transport_from_settings,
)
from emailsvc.settings import SettingsError, load
from tests.harness import free_port

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
