"""The address fast path answers exactly what email-validator answers, message included."""

import string

from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from emailsvc.api import addresses

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
# Characters that make an address quoted, internationalized or broken, and a few that
# look like a domain's punctuation.
OTHER = ' "(),:;<>@[\\]\t.é\u00a0ß\u0130ü\u3002'
TLDS = ["org", "COM", "co", "xn--p1ai", "test", "invalid", "localhost", "onion", "local",
        "arpa", "1", "c1", "example", "a", "x" * 63, "x" * 64]  # fmt: skip


def outcome(check, value):
    try:
        return "valid", check(value)
    except EmailNotValidError as exc:
        return "refused", str(exc)


def reference(value):
    return validate_email(value, check_deliverability=False, allow_smtputf8=False).ascii_email


atoms = st.text(alphabet=ATEXT, min_size=1, max_size=12)
dot_atoms = st.lists(atoms, min_size=1, max_size=4).map(".".join)
local_parts = st.one_of(
    dot_atoms,
    # One character out of place, anywhere in an otherwise plain local part.
    st.builds(
        lambda a, c, b: a + c + b,
        dot_atoms | st.just(""),
        st.sampled_from(OTHER),
        dot_atoms | st.just(""),
    ),  # fmt: skip
    st.text(alphabet=ATEXT + ".", max_size=70),
    st.text(alphabet=ATEXT + OTHER, max_size=20),
    st.integers(60, 250).map(lambda n: "a" * n),
)
good_labels = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?", fullmatch=True)
odd_labels = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "-", max_size=66),
    st.text(alphabet=string.ascii_lowercase + "-_é.", max_size=8),
)
domains = st.builds(
    lambda parts, tld, dot: ".".join([*parts, tld]) + dot,
    st.lists(st.one_of(good_labels, good_labels, good_labels, odd_labels), max_size=4),
    st.sampled_from(TLDS) | good_labels | odd_labels,
    st.sampled_from(["", "", "", "", "", "."]),
)
addresses_like = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains),
    st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains),
    st.text(max_size=40),
)


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(addresses_like)
@example("Foo.Bar@Example.ORG")
@example("a@xn--bcher-kva.ch")
@example("a" * 242 + "@example.org")  # 254 characters: the longest address
@example("a" * 243 + "@example.org")
@example("a" * 65 + "@example.org")
@example("a@-example.org")
@example("a..b@example.org")
@example(".a@example.org")
@example("a@example.org.")
@example("a@192.168.0.1")
@example("a@[192.168.0.1]")
@example("a b@example.org")
@example("a\\b@example.org")
@example('"a"@example.org')
@example("é@example.org")
def test_every_address_gets_email_validators_own_answer(value):
    assert outcome(addresses.ascii_address, value) == outcome(reference, value)


def test_a_thousand_addresses_of_one_domain_check_that_domain_once():
    addresses._checked_domain.cache_clear()
    for n in range(1000):
        assert addresses.ascii_address(f"User.{n}@Shop.Example.COM") == (
            f"User.{n}@shop.example.com"
        )
    info = addresses._checked_domain.cache_info()
    assert (info.misses, info.hits) == (1, 999)
