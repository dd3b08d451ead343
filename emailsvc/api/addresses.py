"""Recipient addresses: email-validator's verdict, reached without its cost for common ones.

A 10,000-recipient POST spent most of its time in email-validator, about 21 µs per
address, mostly redoing the IDNA and special-use checks of the same few domains. Here an
address of the common shape (an ASCII dot-atom local part, an ASCII domain) has its domain
checked by email-validator once per process and its local part by a regular expression
of RFC 5322's dot-atom; anything else, and any domain email-validator refuses, goes to
email-validator whole, so that its answer and its message are the ones the client gets.
A property test holds the two paths to the same result on generated addresses.
"""

import functools
import re

from email_validator import validate_email

# RFC 5322 atext, in dots: what email-validator accepts as an ASCII local part unquoted.
_DOT_ATOM_ADDRESS = re.compile(
    r"([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@([A-Za-z0-9.-]+)\Z"
)
# RFC 5321's path limit less its angle brackets, as email-validator counts it. (It does not
# hold local parts to RFC 5321's 64 octets unless asked to be strict, and neither does this.)
MAX_ADDRESS = 254


def ascii_address(value):
    """``value`` as email-validator's ``ascii_email`` (no DNS, no SMTPUTF8), or its error.

    Raises ``email_validator.EmailNotValidError`` exactly where email-validator does.
    """
    match = _DOT_ATOM_ADDRESS.match(value)
    if match:
        local, domain = match.groups()
        checked = _checked_domain(domain)
        if checked and len(local) + 1 + len(checked) <= MAX_ADDRESS:
            return f"{local}@{checked}"
    return _validated(value)


@functools.lru_cache(maxsize=4096)
def _checked_domain(domain):
    """The domain as email-validator writes it (lower case), or None if it refuses it."""
    try:
        return _validated(f"a@{domain}").partition("@")[2]
    except ValueError:
        # Refused: the whole address then goes to email-validator, for its own message.
        return None


def _validated(address):
    return validate_email(address, check_deliverability=False, allow_smtputf8=False).ascii_email
