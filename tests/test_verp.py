"""VERP envelope senders: the token round-trips, fits a local part, and resists tampering."""

import base64

import pytest

from emailsvc.jobs.records import new_id
from emailsvc.mail.verp import LOCAL_PREFIX, TOKEN_LENGTH, VerpAddresses, VerpTokens


@pytest.fixture
def verp():
    return VerpAddresses(VerpTokens(lambda: "a secret"), "Bounces.Example.com")


def test_a_token_names_its_job_and_recipient_index(verp):
    job = new_id()
    for index in (0, 1, 9_999, 2**32 - 1):
        address = verp.address(job, index)
        assert verp.read(address) == (job, index)


def test_the_address_fits_a_local_part_and_needs_no_quoting(verp):
    address = verp.address(new_id(), 123)
    local, _, domain = address.partition("@")
    assert domain == "bounces.example.com"
    assert local.startswith(LOCAL_PREFIX) and len(local) == len(LOCAL_PREFIX) + TOKEN_LENGTH
    assert len(local) <= 64
    assert local[len(LOCAL_PREFIX) :].isalnum() and local == local.lower()


def test_an_mta_changing_the_case_changes_nothing(verp):
    job = new_id()
    assert verp.read(verp.address(job, 7).upper()) == (job, 7)


def test_every_altered_character_fails(verp):
    job = new_id()
    token = verp.address(job, 5).partition("@")[0][len(LOCAL_PREFIX) :]
    for position in range(len(token)):
        other = "a" if token[position] != "a" else "b"
        altered = token[:position] + other + token[position + 1 :]
        assert verp.tokens.read(altered) is None


def test_a_token_with_another_index_and_the_same_tag_fails(verp):
    job = new_id()
    data = bytearray(base64.b32decode(verp.tokens.mint(job, 5).upper()))
    data[19] = 6  # the index's last byte
    assert verp.tokens.read(base64.b32encode(bytes(data)).decode().lower()) is None


def test_another_secret_or_domain_or_shape_reads_as_nothing(verp):
    job = new_id()
    address = verp.address(job, 1)
    other = VerpAddresses(VerpTokens(lambda: "another secret"), "bounces.example.com")
    assert other.read(address) is None
    assert verp.read(address.replace("example.com", "example.net")) is None
    assert verp.read(address.replace(LOCAL_PREFIX, "bounce+")) is None
    for text in ("", "bounces+@bounces.example.com", "x" * 48, "=" * 48, None, 5):
        assert verp.tokens.read(text) is None


def test_accepts_says_whether_an_address_is_ours_before_any_check(verp):
    assert verp.accepts("bounces+anything@bounces.example.com")
    assert not verp.accepts("postmaster@bounces.example.com")
    assert not verp.accepts("bounces+x@example.com")


def test_a_non_ascii_sender_keeps_its_own_envelope_sender(verp):
    job = new_id()
    assert verp.read(verp.envelope_sender("noreply@example.com", job, 3)) == (job, 3)
    # Its From header needs SMTPUTF8, which an ASCII envelope would not ask for.
    assert verp.envelope_sender("josé@exämple.com", job, 3) == "josé@exämple.com"
