"""The suppression list: per client, the addresses the service must not send to, and why.

Layout, under the configured prefix P (no TTL: a suppression outlives the jobs):
- ``P supp:<client>``          hash: address -> ``<reason>:<unix time>:<job id or empty>``
- ``P supp:<client>:all``      sorted set, every score 0: the addresses, in byte order
                               (``ZRANGEBYLEX`` pages through them)
- ``P supp:<client>:<reason>`` the same, for one reason
- ``P unsubscribe:secret``     string: the unsubscribe tokens' secret generated for
                               development when ``emailsvc.unsubscribe.secret`` is empty

Addresses are keys as the API's address check writes them (the domain in lower-case
ASCII), then lower-cased whole: ``Ana@Example.org`` and ``ana@example.org`` are one entry.
A worker asks about a chunk's recipients with one ``HMGET`` (``reasons``).

Reasons rank: ``manual`` is the client's own and may be replaced by any other reason;
``unsubscribed``, ``bounced`` and ``complained`` come from the recipient's side and stay as
first recorded. Only ``manual`` and ``bounced`` entries may be removed through the API: an
unsubscribe or a complaint is the recipient's word (``remove`` says ``kept``).
"""

import logging
import secrets
import time
from typing import NamedTuple

from .records import now_iso

log = logging.getLogger(__name__)

REASONS = ("unsubscribed", "bounced", "complained", "manual")
# What a client may remove, and what a job may ask to send to anyway (ignore_suppressions).
REMOVABLE = frozenset({"manual", "bounced"})
IGNORABLE = frozenset({"manual"})

# Add (or upgrade a manual entry); returns the value that stands when it is unchanged, or
# false when ARGV[2] was written. KEYS: hash, all-index, then the reason indexes in the
# order of REASONS.
_ADD = """
local index = {unsubscribed = 3, bounced = 4, complained = 5, manual = 6}
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local reason = string.match(old, '^[^:]*')
  if reason ~= 'manual' or ARGV[3] == 'manual' then return old end
  redis.call('ZREM', KEYS[index[reason]], ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZADD', KEYS[index[ARGV[3]]], 0, ARGV[1])
return false
"""

# Remove a removable entry; returns {removed (0 or 1), the value (false when none)}.
_REMOVE = """
local index = {unsubscribed = 3, bounced = 4, complained = 5, manual = 6}
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return {0, false} end
local reason = string.match(old, '^[^:]*')
if reason ~= 'manual' and reason ~= 'bounced' then return {0, old} end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[index[reason]], ARGV[1])
return {1, old}
"""


class Suppression(NamedTuple):
    """One entry of a client's suppression list."""

    email: str
    reason: str
    created_at: str
    job_id: str | None

    def document(self):
        """The entry as the API answers it."""
        return self._asdict()


def address_key(address):
    """The key of an address in the list: the validated address, lower-cased whole."""
    return address.lower()


def _parse(email, value):
    reason, _, rest = value.partition(":")
    moment, _, job_id = rest.partition(":")
    return Suppression(email, reason, now_iso(float(moment)), job_id or None)


class SuppressionStore:
    """Reads and writes the suppression lists of every client under one key prefix."""

    def __init__(self, redis, prefix, clock=time.time):
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._add = redis.register_script(_ADD)
        self._remove = redis.register_script(_REMOVE)

    def _keys(self, client):
        base = f"{self.prefix}supp:{client}"
        return [base, f"{base}:all", *(f"{base}:{reason}" for reason in REASONS)]

    def add(self, client, address, reason, job_id=None):
        """Suppress ``address`` for ``client``; return ``(Suppression, created)``.

        An entry that exists stays as it is (``created`` False), unless it is ``manual``
        and ``reason`` is another, which replaces it.
        """
        if reason not in REASONS:
            raise ValueError(f"unknown suppression reason {reason!r}")
        email = address_key(address)
        value = f"{reason}:{self.clock():.0f}:{job_id or ''}"
        kept = self._add(keys=self._keys(client), args=[email, value, reason])
        return _parse(email, kept or value), not kept

    def get(self, client, address):
        """``client``'s entry for ``address``, or None."""
        email = address_key(address)
        value = self.redis.hget(self._keys(client)[0], email)
        return None if value is None else _parse(email, value)

    def remove(self, client, address):
        """Remove the entry; return ``(removed, Suppression or None)``.

        ``removed`` is False with the entry when its reason is not removable (an
        unsubscribe or a complaint), False with None when there was none.
        """
        email = address_key(address)
        removed, value = self._remove(keys=self._keys(client), args=[email])
        return bool(removed), None if value is None else _parse(email, value)

    def reasons(self, client, addresses):
        """The reason each address (as given, in order) is suppressed for, or None.

        One round trip whatever the number of addresses: a worker asks this once per chunk.
        """
        if not addresses:
            return []
        values = self.redis.hmget(self._keys(client)[0], [address_key(a) for a in addresses])
        return [None if value is None else value.partition(":")[0] for value in values]

    def page(self, client, reason=None, after=None, limit=50):
        """``client``'s entries in address order: ``(entries, cursor)``.

        ``after`` is the cursor of the previous page (its last address, exclusive);
        ``cursor`` is None on the last page. With ``reason``, only entries of that reason.
        """
        keys = self._keys(client)
        index = keys[2 + REASONS.index(reason)] if reason else keys[1]
        low = f"({after}" if after else "-"
        # One more than asked: whether a next page exists, without a count.
        emails = self.redis.zrangebylex(index, low, "+", start=0, num=limit + 1)
        more = len(emails) > limit
        emails = emails[:limit]
        values = self.redis.hmget(keys[0], emails) if emails else []
        entries = [
            _parse(email, value)
            for email, value in zip(emails, values, strict=True)
            # Removed between the two reads.
            if value is not None
        ]
        return entries, (emails[-1] if more else None)

    def generated_secret(self):
        """The unsubscribe tokens' secret of a deployment that configured none.

        Made once and kept in Redis, so that every web and worker process on this Redis
        reads and mints the same tokens: right for development, where tokens may be
        forgotten with Redis; production sets ``EMAILSVC_UNSUBSCRIBE_SECRET``.
        """
        key = f"{self.prefix}unsubscribe:secret"
        if self.redis.set(key, secrets.token_urlsafe(32), nx=True):
            log.warning(
                "emailsvc.unsubscribe.secret is empty: a generated secret is kept in Redis "
                "(%s); set EMAILSVC_UNSUBSCRIBE_SECRET in production",
                key,
            )
        return self.redis.get(key)
