"""Plain-text messages written from a frame (mail.plaintext) are the bytes of the long way."""

import string
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emailsvc.mail.compose import Composer, dump_content, load_content
from emailsvc.mail.messages import message_id, sender_address
from emailsvc.mail.templates import Templates

DATE = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
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
)


def recipient(local, domain, name, bcc):
    entry = {"email": f"{local}@{domain}", "name": name}
    if bcc:
        entry["bcc"] = [{"email": bcc}]
    return entry


recipients = st.builds(
    recipient, locals_, domains, names, st.sampled_from(["", "hidden@example.org", "bé@x.org"])
)


def composer(subject, content, reply_to="", job_headers=None, sender="noreply@example.com"):
    body = {"content": content, "reply_to": reply_to, "headers": job_headers or {}}
    job = {"subject": subject, "content": content, "template": "default"}
    stored = load_content(dump_content(body))
    return Composer(TEMPLATES, job, stored, sender_address(sender, "Équipe"), DATE)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=subjects,
    content=bodies,
    person=recipients,
    reply_to=st.sampled_from(["", "support@example.org"]),
    job_headers=headers,
    index=st.integers(0, 10**6),
)
def test_every_message_from_the_frame_is_the_bytes_the_email_package_writes(
    subject, content, person, reply_to, job_headers, index
):
    job = composer(subject, content, reply_to, job_headers)
    msgid = message_id("0123456789abcdef0123456789abcdef", index, "example.com")
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
