"""Unsubscribe tokens and the one-click headers of broadcast messages (mail.unsubscribe)."""

from datetime import UTC, datetime
from email import message_from_bytes, policy

from emailsvc.mail.compose import Composer, dump_content, load_content
from emailsvc.mail.messages import sender_address
from emailsvc.mail.templates import Templates
from emailsvc.mail.unsubscribe import UnsubscribeLinks, UnsubscribeTokens

TOKENS = UnsubscribeTokens(lambda: "a secret of this test")
JOB_ID = "0123456789abcdef0123456789abcdef"
SENDER = sender_address("noreply@example.com", "")
DATE = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def test_a_token_reads_back_to_its_client_address_and_job_and_shows_none_of_them():
    token = TOKENS.mint("acme", "Ana.Lima@example.org", JOB_ID)
    assert TOKENS.read(token) == ("acme", "ana.lima@example.org", JOB_ID)
    assert token == TOKENS.mint("acme", "ana.lima@example.org", JOB_ID)
    for visible in ("ana", "lima", "example", "acme", JOB_ID[:8]):
        assert visible not in token.lower()
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_an_altered_or_forged_token_reads_as_nothing():
    token = TOKENS.mint("acme", "ana@example.org", JOB_ID)
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    other_secret = UnsubscribeTokens(lambda: "another secret")
    for forged in (
        flipped,
        token[:-1],
        token + "A",
        "",
        "not a token",
        "é" * 40,
        "A" * 5000,
        other_secret.mint("acme", "ana@example.org", JOB_ID),
    ):
        assert TOKENS.read(forged) is None, forged


def composer(stream, headers=None, mailbox="", templates=None):
    job = {"subject": "S", "content": "Hi", "template": "default", "stream": stream}
    links = UnsubscribeLinks(TOKENS, "acme", JOB_ID, "https://mail.example.com/", mailbox)
    content = load_content(dump_content({"content": "Hi", "headers": headers or {}}))
    return Composer(templates or Templates(), job, content, SENDER, DATE, None, links)


def received(job, recipient):
    msg, _ = job.compose(recipient, "<j.1@example.com>")
    return message_from_bytes(msg.as_bytes(), policy=policy.default)


def test_a_broadcast_message_carries_the_one_click_headers_and_precedence():
    job = composer("broadcast", mailbox="unsubscribe@example.com")
    msg = received(job, {"email": "ana@example.org"})
    token = TOKENS.mint("acme", "ana@example.org", JOB_ID)
    assert msg["List-Unsubscribe"] == (
        f"<https://mail.example.com/unsubscribe/{token}>, "
        f"<mailto:unsubscribe@example.com?subject=unsubscribe-{token}>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Precedence"] == "bulk"
    # Each URI whole on its line: never folded into encoded words.
    raw = job.compose({"email": "ana@example.org"}, "<j@x>")[0].as_bytes()
    assert b"=?" not in raw and f"/unsubscribe/{token}>,\r\n <mailto:".encode() in raw


def test_a_transactional_message_carries_none_of_them():
    msg = received(composer("transactional"), {"email": "ana@example.org"})
    for name in ("List-Unsubscribe", "List-Unsubscribe-Post", "Precedence"):
        assert name not in msg


def test_a_job_that_sets_either_header_owns_both():
    for own in ({"List-Unsubscribe": "<mailto:out@example.org>"}, {"List-Unsubscribe-Post": "x"}):
        msg = received(composer("broadcast", own), {"email": "ana@example.org"})
        # Only the job's own header is there, once; the service added neither.
        for name in ("List-Unsubscribe", "List-Unsubscribe-Post"):
            expected = [own[name]] if name in own else None
            assert msg.get_all(name) == expected, name
        assert msg["Precedence"] == "bulk"
    msg = received(composer("broadcast", {"Precedence": "list"}), {"email": "a@example.org"})
    assert msg.get_all("Precedence") == ["list"] and "List-Unsubscribe" in msg


def test_templates_get_the_recipients_unsubscribe_url(tmp_path):
    (tmp_path / "news.txt").write_text("${content}\nLeave: ${unsubscribe_url}|\n")
    templates = Templates(str(tmp_path))
    job = composer("broadcast", templates=templates)
    job.template = "news"
    _, text, _ = job.parts({"email": "bo@example.org"})
    token = TOKENS.mint("acme", "bo@example.org", JOB_ID)
    assert text == f"Hi\nLeave: https://mail.example.com/unsubscribe/{token}|\n"
    transactional = composer("transactional", templates=templates)
    transactional.template = "news"
    assert transactional.parts({"email": "bo@example.org"})[1] == "Hi\nLeave: |\n"
