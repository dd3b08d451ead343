"""Plain-text messages written from a frame (mail.plaintext) are the bytes of the long way."""

import string
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emailsvc.mail.compose import Composer, dump_content, load_content
from emailsvc.mail.messages import message_id, sender_address
from emailsvc.mail.templates import Templates
from emailsvc.mail.unsubscribe import UnsubscribeLinks, UnsubscribeTokens

DATE = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
JOB = "0123456789abcdef0123456789abcdef"
TEMPLATES = Templates()

# Text of every kind: plain words, accents, emoji, quotes and specials, long runs, tabs,
# and line breaks of every sort (\r, \r\n, \x0b, \x85, \u2028 ...).
words = st.text(
    alphabet=st.sampled_from(string.ascii_letters + string.digits + " "), min_size=1, max_size=30
)
any_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), max_codepoint=0x1F64F), max_size=120
)
texts = st.one_of(words, any_text, st.builds("\n".join, st.lists(any_text, max_size=6)))
long_lines = st.builds(lambda n, c: c * n, st.integers(60, 120), st.sampled_from("aé€ "))
bodies = st.one_of(texts, long_lines, st.builds("\n".join, st.lists(texts, max_size=5)))
one_line = any_text.filter(lambda s: "".join(s.splitlines()) == s)
subjects = st.one_of(words, one_line, long_lines)
locals_ = st.one_of(
    st.sampled_from(["ana", "bo.lima", "x+tag", "o'neil", "a_b-c", "ünï", "a" * 70]),
    st.from_regex(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}", fullmatch=True),
)
domains = st.sampled_from(["example.org", "mail.example.co.uk", "exämple.org", "x" * 60 + ".org"])
names = st.one_of(
    st.just(""),
    st.sampled_from(["Ana", "Ana Lima", "Bo 2", "Lima, Ana", "A. Lima", "Zoë", "O'Neil", "a  b"]),
    words,
    one_line,
)
headers = st.one_of(
    st.just({}),
    st.just({"X-Campaign": "spring", "List-Id": "<news.example.org>"}),
    st.builds(lambda v: {"X-Note": v}, words),
    # A job's own List-Unsubscribe (it owns both headers then) or Precedence.
    st.just({"List-Unsubscribe": "<mailto:leave@example.org>", "Precedence": "list"}),
    st.just({"list-unsubscribe-post": "List-Unsubscribe=One-Click"}),
)
TOKENS = UnsubscribeTokens(lambda: "test secret")
# Broadcast or not; a short or long base URL; with or without the mailto form.
streams = st.one_of(
    st.just(None),
    st.builds(
        lambda base, mailbox: (base, mailbox),
        st.sampled_from(["https://m.example.com", "https://mail.example.com/" + "p" * 80]),
        st.sampled_from(["", "unsubscribe@example.com"]),
    ),
)


def recipient(local, domain, name, bcc):
    entry = {"email": f"{local}@{domain}", "name": name}
    if bcc:
        entry["bcc"] = [{"email": bcc}]
    return entry


recipients = st.builds(
    recipient, locals_, domains, names, st.sampled_from(["", "hidden@example.org", "bé@x.org"])
)


def composer(
    subject, content, reply_to="", job_headers=None, sender="noreply@example.com", stream=None
):
    body = {"content": content, "reply_to": reply_to, "headers": job_headers or {}}
    job = {"subject": subject, "content": content, "template": "default"}
    links = None
    if stream is not None:
        job["stream"] = "broadcast"
        links = UnsubscribeLinks(TOKENS, "acme", JOB, *stream)
    stored = load_content(dump_content(body))
    return Composer(TEMPLATES, job, stored, sender_address(sender, "Équipe"), DATE, None, links)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=subjects,
    content=bodies,
    person=recipients,
    reply_to=st.sampled_from(["", "support@example.org"]),
    job_headers=headers,
    index=st.integers(0, 10**6),
    stream=streams,
)
def test_every_message_from_the_frame_is_the_bytes_the_email_package_writes(
    subject, content, person, reply_to, job_headers, index, stream
):
    job = composer(subject, content, reply_to, job_headers, stream=stream)
    msgid = message_id(JOB, index, "example.com")
    try:
        expected, _ = job.compose(person, msgid)
    except ValueError as exc:
        # What the email package cannot build fails the recipient either way.
        with pytest.raises(type(exc)):
            job.message(person, msgid)
        return
    sent = job.message(person, msgid)
    if isinstance(sent, bytes):
        assert sent == expected.as_bytes()
    else:
        assert sent.as_bytes() == expected.as_bytes()


def test_the_common_shapes_take_the_frame():
    job = composer("Réunion de lundi", "Bonjour,\nla réunion est à 10 h.\n", "help@example.org")
    for person in (
        {"email": "ana@example.org"},
        {"email": "bo.lima+x@mail.example.org", "name": "Bo Lima"},
        {"email": "c@example.org", "bcc": [{"email": "archive@example.org"}]},
    ):
        sent = job.message(person, "<j.1@example.com>")
        assert isinstance(sent, bytes)
        assert sent == job.compose(person, "<j.1@example.com>")[0].as_bytes()


def test_what_the_frame_cannot_write_is_built_the_long_way():
    job = composer("S", "x\n")
    long_way = [
        {"email": "ana@example.org", "name": "Lima, Ana"},
        {"email": "zoë@example.org"},
        {"email": "ana@example.org", "cc": [{"email": "b@example.org"}]},
        {"email": "ana@example.org", "bcc": [{"email": "bé@example.org"}]},
    ]
    for person in long_way:
        assert not isinstance(job.message(person, "<j.1@example.com>"), bytes)
    assert not isinstance(composer("S", "é" * 60).message(long_way[0], "<j@x>"), bytes)
    international = composer("S", "x", sender="équipe@example.com")
    assert international.frame is None


def test_broadcast_messages_take_the_frame_with_each_recipients_own_link():
    job = composer("S", "x\n", stream=("https://m.example.com", "unsubscribe@example.com"))
    ana, bo = {"email": "ana@example.org"}, {"email": "bo@example.org", "name": "Bo"}
    sent = [job.message(person, "<j.1@example.com>") for person in (ana, bo)]
    assert all(isinstance(data, bytes) for data in sent)
    assert sent[0] == job.compose(ana, "<j.1@example.com>")[0].as_bytes()
    token = TOKENS.mint("acme", "ana@example.org", JOB)
    assert f"<https://m.example.com/unsubscribe/{token}>".encode() in sent[0]
    assert token.encode() not in sent[1]
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in sent[0]
    assert b"\r\nPrecedence: bulk\r\n" in sent[0]
