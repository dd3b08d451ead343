"""DKIM: messages received by a real SMTP server verify with dkimpy against the public key
(DNS replaced by the test's own records); keys are checked at start and by the heartbeat."""

import base64
import os
import re
import stat
import subprocess
import time
from datetime import UTC, datetime

import dkim
import pytest
import webtest

from emailsvc import main
from emailsvc.assembly import assemble
from emailsvc.cli.dkim_keygen import main as dkim_keygen
from emailsvc.jobs.records import new_id
from emailsvc.mail.compose import dump_content
from emailsvc.mail.dkim import (
    DKIMKeyError,
    DKIMSigner,
    SigningKey,
    generate_key,
    load_key,
    parse_private_key,
)
from emailsvc.settings import SettingsError, dkim_key_entries, load
from tests.harness import app_service, wait_for

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256))).decode()
PDF = base64.b64encode(b"%PDF-1.4\n" + os.urandom(3000)).decode()


def key_file(directory, algorithm="rsa", name="key.pem"):
    """A new private key written to ``directory/name``; its path."""
    path = directory / name
    path.write_bytes(generate_key(algorithm))
    return path


def records(*keys):
    """A DNS look-up that answers the TXT records of ``keys`` and nothing else."""
    published = {}
    for key in keys:
        name, value = key.dns_record() if isinstance(key, SigningKey) else key
        published[name + "."] = value.encode()

    def lookup(name, timeout=5):
        return published.get(name.decode())

    return lookup


def signature_tags(raw):
    """The tags of a message's DKIM-Signature header, unfolded."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    match = re.search(r"^DKIM-Signature:(.*?)\r\n(?![ \t])", head, re.S | re.M)
    value = re.sub(r"\s+", "", match.group(1))
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)


@pytest.fixture(params=["rsa", "ed25519"])
def algorithm(request):
    return request.param


@pytest.fixture
def signing(settings, tmp_path, algorithm):
    """The service's settings with a key for its sender's domain; the key as loaded."""
    path = key_file(tmp_path, algorithm)
    settings["emailsvc.dkim.keys"] = f"example.com:s2026:{path}"
    [entry] = dkim_key_entries(settings["emailsvc.dkim.keys"])
    return load_key(entry)


@pytest.fixture
def service(settings):
    """An assembly built from the test's settings, as a worker builds it; closed after."""
    built = []

    def build():
        built.append(assemble(load(settings, environ={})))
        return built[-1]

    yield build
    for assembly in built:
        assembly.close()


def deliver(assembly, recipients, content=None, **message):
    """Record a job of ``recipients`` and deliver its one chunk; return the job's id."""
    job = new_id()
    fields = {"subject": "Réunion", "content": "Bonjour,\nà lundi.\n", "template": "default"}
    fields.update(client="acme", **message)
    assembly.jobs.create(job, recipients, fields, 100, time.time() + 60, time.time() + 30, content)
    result = assembly.deliverer.deliver_chunk(job, 0, len(recipients))
    assert result.sent == len(recipients), result
    return job


def test_a_plain_text_message_is_signed_and_verifies(service, signing, smtp_server, algorithm):
    assembly = service()
    ana = {"email": "ana@example.org", "name": "Ana", "vars": {}}
    composer = assembly.deliverer.composer(
        {"subject": "s", "template": "default"}, datetime.now(UTC)
    )
    # The message is written as bytes (mail.plaintext), and signed as such.
    assert isinstance(composer.message(ana, "<x@example.com>"), bytes)
    deliver(assembly, [ana])
    [raw] = smtp_server.raw_messages
    assert raw.startswith(b"DKIM-Signature: ")
    assert dkim.verify(raw, dnsfunc=records(signing))
    tags = signature_tags(raw)
    assert tags["a"] == f"{algorithm}-sha256" and tags["c"] == "relaxed/relaxed"
    assert (tags["d"], tags["s"]) == ("example.com", "s2026")
    assert tags["h"].split(":") == [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
    ]


def test_an_html_message_with_attachments_cc_and_list_headers_is_signed_over_all_of_them(
    service, signing, smtp_server
):
    assembly = service()
    body = {
        "content": "Bonjour",
        "html": '<p>Bonjour <img src="cid:logo@x"></p>',
        "attachments": [
            {"filename": "logo.png", "content_type": "image/png", "content": PNG},
            {"filename": "facture.pdf", "content_type": "application/pdf", "content": PDF},
        ],
        "reply_to": "support@example.com",
        "headers": {
            "List-Unsubscribe": "<https://example.com/unsubscribe/t0k3n>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    }
    body["attachments"][0]["content_id"] = "logo@x"
    ana = {"email": "ana@example.org", "name": "Ana Lía", "vars": {}}
    ana["cc"] = [{"email": "bo@example.org", "name": "Bo"}]
    deliver(assembly, [ana], dump_content(body))
    [raw] = smtp_server.raw_messages
    [(_, rcpts, msg)] = smtp_server.messages
    assert rcpts == ["ana@example.org", "bo@example.org"]
    assert msg.get_content_type() == "multipart/mixed"
    assert dkim.verify(raw, dnsfunc=records(signing))
    assert signature_tags(raw)["h"].split(":") == [
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "reply-to",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ]


def test_a_broadcast_message_is_signed_over_its_own_one_click_headers(
    service, signing, smtp_server, settings
):
    # A long base URL and a mailbox: List-Unsubscribe is folded between its two URIs.
    settings["emailsvc.unsubscribe.mailbox"] = "unsubscribe@example.com"
    assembly = service()
    ana = {"email": "ana@example.org", "name": "Ana", "vars": {}}
    base = "https://mail.example.com/" + "p" * 60
    deliver(assembly, [ana], stream="broadcast", unsubscribe_base=base)
    [raw] = smtp_server.raw_messages
    assert b"\r\nList-Unsubscribe: <" + base.encode() in raw and b">,\r\n <mailto:" in raw
    assert dkim.verify(raw, dnsfunc=records(signing))
    assert signature_tags(raw)["h"].split(":")[-2:] == [
        "list-unsubscribe",
        "list-unsubscribe-post",
    ]


def test_an_altered_message_fails_verification(service, signing, smtp_server):
    deliver(service(), [{"email": "ana@example.org", "name": "", "vars": {}}])
    [raw] = smtp_server.raw_messages
    lookup = records(signing)
    assert dkim.verify(raw, dnsfunc=lookup)
    assert not dkim.verify(raw.replace(b"lundi", b"mardi"), dnsfunc=lookup)
    assert not dkim.verify(raw.replace(b"To: ana@", b"To: eve@"), dnsfunc=lookup)
    # Another key published under the same selector does not verify it either.
    other = parse_private_key(generate_key(), "example.com", "s2026")
    assert not dkim.verify(raw, dnsfunc=records(other))


def test_only_messages_from_a_domain_with_a_key_are_signed(
    settings, service, smtp_server, tmp_path
):
    path = key_file(tmp_path)
    settings["emailsvc.dkim.keys"] = f"shop.example:mail:{path}"
    assembly = service()
    ana = [{"email": "ana@example.org", "name": "", "vars": {}}]
    deliver(assembly, ana)  # from emailsvc.sender, noreply@example.com: no key
    deliver(assembly, ana, sender="orders@shop.example")  # the job's own "from"
    unsigned, signed = smtp_server.raw_messages
    assert b"DKIM-Signature" not in unsigned
    [entry] = dkim_key_entries(settings["emailsvc.dkim.keys"])
    assert signature_tags(signed)["d"] == "shop.example"
    assert dkim.verify(signed, dnsfunc=records(load_key(entry)))


def test_the_keygen_writes_a_private_key_and_prints_a_record_that_verifies(tmp_path, capsys):
    path = tmp_path / "example.com.pem"
    assert dkim_keygen(["example.com", "s1", "-o", str(path)]) == 0
    out, err = capsys.readouterr()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    [line] = out.splitlines()
    name, strings = line.split(" IN TXT ")
    assert name == "s1._domainkey.example.com"
    value = "".join(re.findall(r'"([^"]*)"', strings))
    assert value.startswith("v=DKIM1; k=rsa; p=")
    # The entry to configure is printed too, and the key it names signs what verifies.
    [entry] = dkim_key_entries(err.split()[-1])
    signer = DKIMSigner.from_entries([entry])
    message = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\n\r\nbody\r\n"
    signed = signer.key_for("example.com").sign(message)
    assert dkim.verify(signed, dnsfunc=records((name, value)))
    # An existing key is never overwritten.
    assert dkim_keygen(["example.com", "s1", "-o", str(path)]) == 1
    assert "not overwritten" in capsys.readouterr().err


def test_the_keygen_makes_ed25519_keys_on_request(tmp_path, capsys):
    path = tmp_path / "ed.pem"
    assert dkim_keygen(["--ed25519", "example.com", "s2", "-o", str(path)]) == 0
    value = re.search(r'"(.*)"', capsys.readouterr().out).group(1)
    assert value.startswith("v=DKIM1; k=ed25519; p=")
    assert parse_private_key(path.read_bytes()).algorithm == b"ed25519-sha256"


def test_a_key_can_come_from_an_environment_variable(monkeypatch):
    pem = generate_key().decode()
    # As a one-line env file writes it: the line breaks as "\n".
    monkeypatch.setenv("TEST_DKIM_KEY", pem.replace("\n", "\\n"))
    [entry] = dkim_key_entries("Example.COM:s1:env:TEST_DKIM_KEY")
    signer = DKIMSigner.from_entries([entry])
    key = signer.key_for("EXAMPLE.com")
    signed = key.sign(b"From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n")
    assert dkim.verify(signed, dnsfunc=records(key))
    signer.check(timeout=1)  # nothing to read again: the variable is read once


def test_dknewkey_ed25519_seeds_are_read_too():
    # dkimpy's own dknewkey writes an Ed25519 key as its seed in base64, on one line.
    seed = base64.b64encode(os.urandom(32))
    key = parse_private_key(seed + b"\n", "example.com", "s1")
    assert key.algorithm == b"ed25519-sha256"
    assert dkim.verify(key.sign(b"From: a@example.com\r\n\r\nx\r\n"), dnsfunc=records(key))


@pytest.mark.parametrize(
    "content, reason",
    [
        (None, "cannot read"),
        (b"not a key", "not a PEM private key"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a usable PEM"),
    ],
    ids=["missing", "garbage", "broken-pem"],
)
def test_a_key_that_cannot_be_read_or_parsed_stops_the_assembly(
    settings, tmp_path, content, reason
):
    path = tmp_path / "key.pem"
    if content is not None:
        path.write_bytes(content)
    settings["emailsvc.dkim.keys"] = f"example.com:s1:{path}"
    with pytest.raises(SettingsError, match=f"key of example.com \\(selector s1\\): {reason}"):
        assemble(load(settings, environ={}))


def test_a_missing_variable_and_a_short_rsa_key_are_refused(monkeypatch):
    monkeypatch.delenv("TEST_DKIM_UNSET", raising=False)
    with pytest.raises(DKIMKeyError, match="TEST_DKIM_UNSET is not set"):
        DKIMSigner.from_entries(dkim_key_entries("example.com:s1:env:TEST_DKIM_UNSET"))
    # Made by openssl: the cryptography package makes no key this short.
    command = ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512"]
    short = subprocess.run(command, check=True, capture_output=True).stdout
    with pytest.raises(DKIMKeyError, match="512 bits is too short"):
        parse_private_key(short)


@pytest.mark.parametrize(
    "value",
    [
        "example.com:s1",
        "localhost:s1:/k.pem",
        "exa_mple.com:s1:/k.pem",
        "example.com:s 1:/k.pem",
        "example.com:s1:env:",
        "example.com:s1:/a.pem example.com:s2:/b.pem",
    ],
)
def test_malformed_key_entries_are_refused_by_the_settings(value):
    with pytest.raises(SettingsError, match="emailsvc.dkim.keys"):
        load({"emailsvc.dkim.keys": value}, environ={})


def test_the_heartbeat_reports_a_key_file_that_can_no_longer_be_read(settings, tmp_path):
    path = key_file(tmp_path)
    settings["emailsvc.dkim.keys"] = f"example.com:s2026:{path}"
    app = webtest.TestApp(main({}, **settings))
    try:
        checks = app.get("/__heartbeat__", expect_errors=True).json["checks"]
        assert checks["dkim"] == "ok"
        path.unlink()  # a lost volume, a rotation gone wrong: the next restart would fail
        response = app.get("/__heartbeat__", status=503)
        assert response.json["checks"]["dkim"] == "error"
        assert response.json["details"]["dkim"] == (
            "cannot read the key of example.com (s2026): FileNotFoundError"
        )
        path.write_bytes(b"garbage")
        details = app.get("/__heartbeat__", status=503).json["details"]
        assert details["dkim"] == "cannot read the key of example.com (s2026): unusable"
    finally:
        app.app.registry.emailsvc.close()


def test_without_keys_the_heartbeat_has_no_dkim_check(app):
    assert "dkim" not in app.get("/__heartbeat__", expect_errors=True).json["checks"]


def test_a_sender_that_cannot_be_sent_as_bytes_is_refused_when_its_domain_signs(
    settings, tmp_path
):
    settings["emailsvc.dkim.keys"] = f"example.com:s1:{key_file(tmp_path)}"
    settings["emailsvc.sender"] = "équipe@example.com"
    with pytest.raises(SettingsError, match="emailsvc.sender .* ASCII"):
        assemble(load(settings, environ={}))


def test_a_job_posted_to_the_service_arrives_signed_from_a_real_worker(
    settings, signing, start_worker, smtp_server
):
    start_worker()
    body = {"recipients": ["ana@example.org"], "subject": "Réunion", "content": "À lundi."}
    with app_service(settings) as app:
        app.post_json("/email", body, status=202)
        assert wait_for(lambda: smtp_server.raw_messages, 30)
    [raw] = smtp_server.raw_messages
    assert dkim.verify(raw, dnsfunc=records(signing))
