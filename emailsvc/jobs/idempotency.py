"""Idempotency keys: a client's key is claimed while its first request runs, then answered.

Layout, under the configured prefix P:
- ``P idempotency:<client>:<sha256 hex of the key>`` string, JSON. While the first
  request with the key runs: ``{"state": "pending", "fingerprint", "token"}``, expiring
  after ``claim_seconds``. Once its job is recorded: ``{"state": "done", "fingerprint",
  "job_id", "body"}`` (``body`` the 202's), written in the job's own transaction
  (``JobStore.create``), kept for ``emailsvc.idempotency_ttl_seconds``.

The key is hashed so that any string a client picks makes a short, safe Redis key, and
the client's name comes first so that two clients' keys never meet.
"""

import hashlib
import json
import secrets
from typing import NamedTuple

# Claim the key if nobody holds it (returns nil), else return what holds it. One step: two
# requests with one key cannot both claim it, and the holder cannot vanish in between.
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
"""

# Give a claim back, only if it is still this request's own: once the job is recorded the
# key holds its answer instead, which stays.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

PENDING = "pending"
DONE = "done"


class Claim(NamedTuple):
    """A request's hold on its idempotency key: the Redis key and the value it wrote."""

    key: str
    value: str
    fingerprint: str


class IdempotencyStore:
    """Claims, answers and releases each client's idempotency keys in Redis."""

    def __init__(self, redis, prefix, ttl_seconds, claim_seconds=60):
        self.redis = redis
        self.prefix = prefix
        #: How long a recorded job's answer is replayed for its key.
        self.ttl = ttl_seconds
        #: How long a claim outlives a request that died without releasing it.
        self.claim_seconds = claim_seconds
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)

    def redis_key(self, client, key):
        """The Redis key of ``client``'s idempotency key ``key``."""
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return f"{self.prefix}idempotency:{client}:{digest}"

    def claim(self, client, key, fingerprint):
        """Claim ``client``'s ``key`` for a request whose body has ``fingerprint``.

        Returns ``(Claim, None)`` when this request holds the key now, else ``(None,
        record)`` with what holds it: ``{"state": "pending", "fingerprint"}`` while another
        request runs, ``{"state": "done", "fingerprint", "job_id", "body"}`` once it ended.
        """
        redis_key = self.redis_key(client, key)
        value = json.dumps(
            {"state": PENDING, "fingerprint": fingerprint, "token": secrets.token_hex(8)}
        )
        held = self._claim(keys=[redis_key], args=[value, self.claim_seconds])
        if held is None:
            return Claim(redis_key, value, fingerprint), None
        return None, json.loads(held)

    def keep(self, pipe, claim, job_id, body):
        """Write, in the job's transaction ``pipe``, the answer replayed for the claimed key."""
        answer = {"state": DONE, "fingerprint": claim.fingerprint, "job_id": job_id, "body": body}
        pipe.set(claim.key, json.dumps(answer, ensure_ascii=False), ex=self.ttl)

    def release(self, claim):
        """Free the key unless its job was recorded; True when it was freed."""
        return bool(self._release(keys=[claim.key], args=[claim.value]))
