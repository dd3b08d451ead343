from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from emailsvc.mail.messages import build_message, sender_address


def build(**overrides):
    args = {
        "sender": sender_address("noreply@example.com", "Équipe"),
        "recipient": {"email": "ana@example.org", "name": "Ana Müller"},
        "subject": "Réunion de lundi",
        "body": "Bonjour\nÀ lundi",
    }
    args.update(overrides)
    return build_message(**args)


def test_headers_are_rfc_2047_encoded_and_parse_back():
    raw = build().as_bytes()
    assert b"R\xc3\xa9union" not in raw  # nothing 8-bit in headers
    msg = message_from_bytes(raw, policy=policy.default)
    assert str(msg["Subject"]) == "Réunion de lundi"
    assert msg["To"].addresses[0].display_name == "Ana Müller"
    assert msg["From"].addresses[0].addr_spec == "noreply@example.com"
    assert msg.get_content_charset() == "utf-8"
    assert msg.get_content().replace("\r\n", "\n") == "Bonjour\nÀ lundi\n"


def test_date_is_utc_and_message_id_uses_the_sender_domain():
    msg = build(now=datetime(2026, 11, 20, 10, 0, tzinfo=UTC))
    assert msg["Date"] in ("Fri, 20 Nov 2026 10:00:00 +0000", "Fri, 20 Nov 2026 10:00:00 GMT")
    assert msg["Message-ID"].endswith("@example.com>")
    assert build()["Message-ID"] != build()["Message-ID"]


def test_line_breaks_cannot_add_headers():
    with pytest.raises(ValueError):
        build(subject="Hi\r\nBcc: victim@example.org").as_bytes()
