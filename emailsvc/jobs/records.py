"""Job records in Redis: creation, per-recipient outcomes and the status document.

Layout, under the configured prefix P:
- ``P job:<id>``          hash: total, sent, failed, status, timestamps, message fields,
                          the client that created it and its chosen sender (if any)
- ``P job:<id>:outcomes`` hash: recipient index -> ``sent`` or ``failed``
- ``P job:<id>:errors``   list: one JSON object per failed recipient, in order of failure
"""

import json
import uuid
from datetime import UTC, datetime

FINAL_STATUSES = ("sent", "partially_failed", "failed", "cancelled")

# One recipient's outcome, applied atomically: the outcome is written once (HSETNX), so a
# chunk redelivered after a crash cannot count a recipient twice; counters, status and
# timestamps follow in the same step, so readers never see sent + failed + pending != total.
_RECORD_OUTCOME = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
local ttl = tonumber(ARGV[5])
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
if ARGV[2] == 'failed' then
  redis.call('RPUSH', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[3], ttl)
end
local v = redis.call('HMGET', KEYS[1], 'total', 'sent', 'failed', 'status')
local total, sent, failed = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
local status = 'sending'
if v[4] == 'cancelled' then
  status = 'cancelled'
elseif sent + failed >= total then
  if failed == 0 then status = 'sent' elseif sent == 0 then status = 'failed'
  else status = 'partially_failed' end
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[4])
end
redis.call('HSET', KEYS[1], 'status', status, 'updated_at', ARGV[4])
return 1
"""

# Marks a job as waiting for a retry, unless it already reached a final status.
_MARK_RETRYING = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
if status == 'sent' or status == 'partially_failed' or status == 'failed'
   or status == 'cancelled' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'retrying', 'updated_at', ARGV[1])
return 1
"""


def now_iso():
    """The current UTC time as ISO 8601 with a ``Z`` suffix, to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id():
    """A fresh, unguessable job id."""
    return uuid.uuid4().hex


class JobStore:
    """Reads and writes job records under one key prefix."""

    def __init__(self, redis, prefix, ttl_seconds):
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds
        self._record = redis.register_script(_RECORD_OUTCOME)
        self._retrying = redis.register_script(_MARK_RETRYING)

    def _keys(self, job_id):
        base = f"{self.prefix}job:{job_id}"
        return base, base + ":outcomes", base + ":errors"

    def create(self, job_id, total, message):
        """Record a new job, ``queued``; ``message`` holds its subject, content and template."""
        key = self._keys(job_id)[0]
        now = now_iso()
        fields = {
            "total": total,
            "sent": 0,
            "failed": 0,
            "status": "queued",
            "created_at": now,
            "updated_at": now,
            "finished_at": "",
            **message,
        }
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self.ttl)
            pipe.execute()

    def delete(self, job_id):
        """Remove every key of a job (used when it could not be enqueued)."""
        self.redis.delete(*self._keys(job_id))

    def message(self, job_id):
        """Return the job's stored fields, or None when the job does not exist (or expired)."""
        fields = self.redis.hgetall(self._keys(job_id)[0])
        return fields or None

    def done_indexes(self, job_id, indexes):
        """Return the subset of recipient ``indexes`` that already have an outcome."""
        if not indexes:
            return set()
        values = self.redis.hmget(self._keys(job_id)[1], [str(i) for i in indexes])
        return {i for i, value in zip(indexes, values, strict=True) if value is not None}

    def record_sent(self, job_id, index):
        """Record that recipient ``index`` was accepted by the relay."""
        return self._record(keys=self._keys(job_id), args=[index, "sent", "", now_iso(), self.ttl])

    def record_failed(self, job_id, index, recipient, code, message):
        """Record that recipient ``index`` failed for good, with the SMTP code and message."""
        error = json.dumps({"recipient": recipient, "code": code, "message": message})
        return self._record(
            keys=self._keys(job_id), args=[index, "failed", error, now_iso(), self.ttl]
        )

    def mark_retrying(self, job_id):
        """Say that part of the job waits for a retry."""
        self._retrying(keys=self._keys(job_id)[:1], args=[now_iso()])

    def status(self, job_id, client):
        """The job's status document; None if it does not exist or is not ``client``'s."""
        key, _, errors_key = self._keys(job_id)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hmget(
                key,
                "total",
                "sent",
                "failed",
                "status",
                "created_at",
                "updated_at",
                "finished_at",
                "client",
            )
            pipe.lrange(errors_key, 0, -1)
            fields, errors = pipe.execute()
        if fields[0] is None or fields[7] != client:
            return None
        total, sent, failed = (int(v) for v in fields[:3])
        return {
            "id": job_id,
            "status": fields[3],
            "total": total,
            "sent": sent,
            "failed": failed,
            "pending": total - sent - failed,
            "created_at": fields[4],
            "updated_at": fields[5],
            "finished_at": fields[6] or None,
            "errors": [json.loads(e) for e in errors],
        }
