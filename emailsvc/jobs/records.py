"""Job records in Redis: a job's content, its chunks, per-recipient outcomes and its status.

Layout, under the configured prefix P (every key of a job expires with the job):
- ``P job:<id>``            hash: total, sent, failed, suppressed (a part of failed),
                            the reports' counts (bounced, a part of sent; soft_bounced,
                            complained, copies_bounced), status, timestamps, the message
                            fields, client, sender, stream, ignored suppression reasons,
                            the unsubscribe links' base URL, request id, chunk size,
                            delivery deadline, and while retrying
                            ``last_error``/``next_attempt_at``
- ``P job:<id>:recipients`` list: one entry per recipient, in order; stored once, chunks
                            read their slice of it. A bare address when the recipient
                            has nothing but its address, else its JSON object
                            (``encode_recipient``)
- ``P job:<id>:content``    string: JSON of what a job has beyond subject and text (HTML,
                            attachments, headers, reply-to, PDF specs); stored once, only
                            for jobs that have any, read once per chunk
- ``P job:<id>:chunks``     hash: offset -> the chunk's state while it has work left:
                            ``q:<t>`` queued, ``s:<t>`` started, ``r:<t>:<attempt>`` waiting
                            for a retry due at t (seconds since the epoch), and
                            ``q:<t>:<attempt>:<n>`` queued again by the watchdog for the
                            n-th time
- ``P job:<id>:lease:<off>`` string: the token of the worker delivering that chunk now
- ``P job:<id>:outcomes``   hash: recipient index -> ``sent`` or ``failed``
- ``P job:<id>:errors``     list: one JSON object per failed recipient, in order of failure,
                            then one per sent recipient whose message bounced later
- ``P job:<id>:reports``    hash: ``<index>:<kind>`` -> 1, the bounces and complaints
                            already counted (each once); the job hash counts them in
                            ``bounced``, ``soft_bounced`` and ``complained``
- ``P bounces:counts``      hash: what ``emailsvc-bounces`` received, for the whole
                            deployment: ``hard_bounce``, ``soft_bounce``, ``complaint``,
                            ``other`` (success DSNs), ``dead_letter``; no TTL
- ``P jobs:watch``          sorted set: job id -> when the watchdog should look at it next
- ``P jobs:retries``        sorted set: ``<id>:<offset>:<count>:<attempt>`` -> when it is due
- ``P jobs:index``          sorted set: job id -> when it was created; members older than
                            the records' TTL are trimmed whenever a job is created
- ``P idempotency:<client>:<hash>`` the answer kept for a job's idempotency key, written in
                            ``create``'s transaction (``jobs/idempotency.py``)
"""

import json
import time
import uuid
from datetime import UTC, datetime
from typing import NamedTuple

from redis.exceptions import NoScriptError

FINAL_STATUSES = ("sent", "partially_failed", "failed", "cancelled")

# One recipient's outcome, applied atomically: the outcome is written once (HSETNX), so a
# chunk redelivered after a crash cannot count a recipient twice; counters, status and
# timestamps follow in the same step, so readers never see sent + failed + pending != total.
# The job's next watchdog look moves past this progress. ARGV[8], when '1', counts the
# failure as suppressed too. Returns -1 (no job), 0 (already recorded) or 1.
_RECORD_OUTCOME = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
local ttl = tonumber(ARGV[5])
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
if ARGV[8] == '1' then redis.call('HINCRBY', KEYS[1], 'suppressed', 1) end
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
  redis.call('HDEL', KEYS[1], 'next_attempt_at')
  redis.call('ZREM', KEYS[4], ARGV[7])
else
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[7])
end
redis.call('HSET', KEYS[1], 'status', status, 'updated_at', ARGV[4])
return 1
"""

# A chunk waits for a retry: into the retry schedule, its state ``r``, the job ``retrying``
# (unless final) with the reason and the time of the next attempt.
_SCHEDULE_RETRY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], 'r:' .. ARGV[1] .. ':' .. ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[8], ARGV[7])
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'sent' or status == 'partially_failed' or status == 'failed'
   or status == 'cancelled' then return 1 end
redis.call('HSET', KEYS[1], 'status', 'retrying', 'updated_at', ARGV[5],
           'last_error', ARGV[6], 'next_attempt_at', ARGV[9])
return 1
"""

# The watchdog queues a chunk again: only if its state is still the one it judged lost (a
# worker may have taken the chunk since).
_MARK_REQUEUED = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# Take a chunk's lease (a worker delivers it now) and mark the chunk started.
_ACQUIRE_LEASE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return redis.call('TTL', KEYS[2])
end
if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then
  redis.call('HSET', KEYS[3], ARGV[3], 's:' .. ARGV[4])
end
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[5])
return 0
"""

# Extend or give back a lease, only by the worker that holds it.
_RENEW_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Remove up to ARGV[2] members whose score is at most ARGV[1] and return them: every caller
# gets different members, so any number of workers may run the periodic step at once.
_POP_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""

# The watchdog's claim: jobs due for a look, each pushed ARGV[3] seconds ahead, so that
# another worker running the same step at the same time takes other jobs.
_CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local later = tonumber(ARGV[1]) + tonumber(ARGV[3])
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], later, member) end
return due
"""

# Forget a job that was accepted while its client was told it was not (see revoke()). A
# job has begun once a message was sent or failed otherwise than by a suppression (those
# are recorded when the job is accepted). KEYS[9] and after (the answer kept for the job's
# idempotency key) go with it.
_REVOKE = """
local v = redis.call('HMGET', KEYS[1], 'total', 'sent', 'failed', 'suppressed')
if not v[1] then return 1 end
if tonumber(v[2]) > 0 or tonumber(v[3]) > tonumber(v[4] or 0) then return -1 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[8])
for i = 9, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('ZREM', KEYS[7], ARGV[1])
return 1
"""

# A bounce or complaint report about recipient ARGV[1]: counted in the job's field ARGV[2]
# (once per recipient and kind when ARGV[4] is '1'); a hard bounce's error ARGV[3] joins
# the job's errors only if the recipient's outcome is ``sent``: the outcome itself, written
# once, stays. Returns -1 (no job), 0 (already counted) or 1.
_RECORD_REPORT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local ttl = redis.call('TTL', KEYS[1])
if ARGV[4] == '1' then
  if redis.call('HSETNX', KEYS[4], ARGV[1] .. ':' .. ARGV[2], 1) == 0 then return 0 end
  if ttl > 0 then redis.call('EXPIRE', KEYS[4], ttl) end
end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
if ARGV[3] ~= '' and redis.call('HGET', KEYS[2], ARGV[1]) == 'sent' then
  redis.call('RPUSH', KEYS[3], ARGV[3])
  if ttl > 0 then redis.call('EXPIRE', KEYS[3], ttl) end
end
return 1
"""

_STATUS_FIELDS = (
    "total",
    "sent",
    "failed",
    "suppressed",
    "bounced",
    "status",
    "created_at",
    "updated_at",
    "finished_at",
    "client",
    "last_error",
    "next_attempt_at",
)


def now_iso(at=None):
    """A UTC time (now by default) as ISO 8601 with a ``Z`` suffix, to the second."""
    moment = datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id():
    """A fresh, unguessable job id."""
    return uuid.uuid4().hex


def chunk_offsets(total, chunk_size):
    """The offsets of a job's chunks."""
    return range(0, total, chunk_size)


class ChunkState(NamedTuple):
    """A chunk's state in ``job:<id>:chunks``, as ``JobStore.chunk_states`` reads it."""

    kind: str  # q (queued), s (started) or r (waiting for a retry)
    when: float  # when it was queued or started, or when its retry is due
    attempt: int  # the delivery attempt it is at (0 the first)
    requeues: int  # how many times the watchdog has queued it again
    raw: str  # the stored value, to change it only if nobody else did


def encode_recipient(recipient):
    """A recipient as stored: its bare address when it has nothing else, else its JSON.

    Most bulk recipients are bare addresses: storing them as such spares a 10,000-recipient
    POST 10,000 JSON encodings, and Redis two thirds of their bytes. An address may begin
    with ``{`` (it is allowed in a local part); such a recipient is stored as JSON, which
    is what a stored value beginning with ``{`` is read as.
    """
    email = recipient["email"]
    if email[:1] != "{" and all(not value for key, value in recipient.items() if key != "email"):
        return email
    return json.dumps(recipient, ensure_ascii=False)


def decode_recipient(stored):
    """The recipient object ``encode_recipient`` stored."""
    if stored[:1] == "{":
        return json.loads(stored)
    return {"email": stored, "name": "", "vars": {}}


def suppressed_error(recipient, reason):
    """The error of a recipient not sent to because its address is suppressed (JSON)."""
    return json.dumps({"recipient": recipient, "code": None, "message": f"suppressed: {reason}"})


def _summary(job_id, fields):
    """The counters and times of a job's status document, from its ``_STATUS_FIELDS``."""
    total, sent, failed = (int(fields[name]) for name in ("total", "sent", "failed"))
    return {
        "id": job_id,
        "status": fields["status"],
        "total": total,
        "sent": sent,
        "failed": failed,
        "pending": total - sent - failed,
        # Recipients not sent to because they are suppressed: a part of ``failed``.
        "suppressed": int(fields["suppressed"] or 0),
        # Sent recipients whose message bounced later (emailsvc-bounces): a part of ``sent``.
        "bounced": int(fields["bounced"] or 0),
        "created_at": fields["created_at"],
        "updated_at": fields["updated_at"],
        "finished_at": fields["finished_at"] or None,
    }


def _resp(arguments):
    """A command in Redis's protocol (RESP): what redis-py's packer writes for strings and
    numbers, without its per-argument cost on the per-message path."""
    parts = [b"*%d\r\n" % len(arguments)]
    for argument in arguments:
        data = str(argument).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class SentRecorder:
    """Records a connection's sent recipients without waiting for Redis in between.

    ``write`` sends a recipient's outcome to Redis at once and returns; its answer is read
    by ``confirm``, which the connection calls before the final dot of its next message
    (and at its end). The outcome therefore leaves the worker as soon as the relay took
    the message, as with a plain call, and no message is handed over while the previous
    one's record is unconfirmed: a crash still leaves at most the one message in flight
    on each connection unrecorded, while Redis's round trip overlaps the relay's.
    """

    def __init__(self, store):
        self.store = store
        self.connection = None
        self.pending = None

    def write(self, job_id, index):
        """Send the outcome ``sent`` of recipient ``index``; its answer is read later."""
        if self.pending is not None:
            raise RuntimeError("the previous outcome is not confirmed yet")
        keys, args = self.store._outcome_arguments(job_id, index, "sent", "")
        if self.connection is None:
            self.connection = self.store.redis.connection_pool.get_connection()
        self.pending = (job_id, index)
        command = ("EVALSHA", self.store._record.sha, len(keys), *keys, *args)
        try:
            self.connection.send_packed_command([_resp(command)])
        except BaseException:
            self._drop()
            raise

    def confirm(self):
        """The answer of the outcome written last (as ``record_sent``'s), or None if none."""
        if self.pending is None:
            return None
        job_id, index = self.pending
        try:
            answer = self.connection.read_response()
        except NoScriptError:
            # Redis restarted and forgot the script: the record is made again, loading it
            # (the outcome is written once, whatever is repeated).
            answer = self.store.record_sent(job_id, index)
        except BaseException:
            self._drop()
            raise
        self.pending = None
        return int(answer)

    def close(self):
        """Give the connection back to the pool; an answer left unread is dropped with it."""
        if self.connection is not None:
            if self.pending is not None:
                # Its answer, unread, would go to the connection's next user.
                self.connection.disconnect()
                self.pending = None
            self.store.redis.connection_pool.release(self.connection)
            self.connection = None

    def _drop(self):
        # A connection whose answers are out of step is not reused as it is.
        self.connection.disconnect()
        self.pending = None
        self.close()


class JobStore:
    """Reads and writes job records under one key prefix."""

    def __init__(self, redis, prefix, ttl_seconds, stall_seconds=30, clock=time.time):
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds
        #: How long after a job's last progress the watchdog looks at it.
        self.stall = stall_seconds
        self.clock = clock
        self.watch_key = f"{prefix}jobs:watch"
        self.retries_key = f"{prefix}jobs:retries"
        #: Every job by creation time, newest last: the dashboard's list and the job gauges.
        self.index_key = f"{prefix}jobs:index"
        self._record = redis.register_script(_RECORD_OUTCOME)
        self._schedule_retry = redis.register_script(_SCHEDULE_RETRY)
        self._acquire = redis.register_script(_ACQUIRE_LEASE)
        self._renew = redis.register_script(_RENEW_LEASE)
        self._release = redis.register_script(_RELEASE_LEASE)
        self._pop_due = redis.register_script(_POP_DUE)
        self._claim_due = redis.register_script(_CLAIM_DUE)
        self._revoke = redis.register_script(_REVOKE)
        self._mark_requeued = redis.register_script(_MARK_REQUEUED)
        self._record_report = redis.register_script(_RECORD_REPORT)
        #: What ``emailsvc-bounces`` received, by kind, for the whole deployment.
        self.report_counts_key = f"{prefix}bounces:counts"

    def _key(self, job_id, part=""):
        return f"{self.prefix}job:{job_id}{part}"

    def lease_key(self, job_id, offset):
        """The key of one chunk's lease."""
        return self._key(job_id, f":lease:{offset}")

    # --- accepting a job ---

    def create(
        self,
        job_id,
        recipients,
        message,
        chunk_size,
        deadline,
        first_look,
        content=None,
        suppressed=None,
        also=None,
    ):
        """Record a new job, ``queued``, with its recipients and chunks, in one transaction.

        Either all of it is written or none: a job is never half-recorded. ``deadline`` is
        when its delivery lifetime ends; ``first_look`` when the watchdog first checks it.
        ``content`` (a string: HTML, attachments, ...) is stored once beside the job.
        ``suppressed`` (``{index: reason}``) are the recipients found suppressed now: they
        are recorded failed at once; a job of suppressed recipients only ends ``failed``.
        ``also(pipe)``, when given, writes more in the same transaction (the answer kept
        for an idempotency key: a job never exists without it).
        """
        now = self.clock()
        suppressed = suppressed or {}
        everyone = len(suppressed) == len(recipients)
        fields = {
            "total": len(recipients),
            "sent": 0,
            "failed": len(suppressed),
            "suppressed": len(suppressed),
            "status": "failed" if everyone else "queued",
            "created_at": now_iso(now),
            "updated_at": now_iso(now),
            "finished_at": now_iso(now) if everyone else "",
            "chunk_size": chunk_size,
            "deadline": deadline,
            **message,
        }
        keys = [self._key(job_id, part) for part in ("", ":recipients")]
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys[0], mapping=fields)
            pipe.rpush(keys[1], *map(encode_recipient, recipients))
            if not everyone:
                # A job with nothing to send has no chunk, and nothing for the watchdog.
                keys.append(self._key(job_id, ":chunks"))
                offsets = chunk_offsets(len(recipients), chunk_size)
                pipe.hset(keys[-1], mapping={offset: f"q:{now:.3f}" for offset in offsets})
                pipe.zadd(self.watch_key, {job_id: first_look})
            if suppressed:
                keys += [self._key(job_id, ":outcomes"), self._key(job_id, ":errors")]
                pipe.hset(keys[-2], mapping=dict.fromkeys(sorted(suppressed), "failed"))
                errors = [
                    suppressed_error(recipients[index]["email"], reason)
                    for index, reason in sorted(suppressed.items())
                ]
                pipe.rpush(keys[-1], *errors)
            if content is not None:
                keys.append(self._key(job_id, ":content"))
                pipe.set(keys[-1], content)
            for key in keys:
                pipe.expire(key, self.ttl)
            pipe.zadd(self.index_key, {job_id: now})
            # The records of jobs older than the TTL are gone: so are their index entries.
            pipe.zremrangebyscore(self.index_key, "-inf", f"({now - self.ttl:.3f}")
            if also is not None:
                also(pipe)
            pipe.execute()

    def exists(self, job_id):
        """Whether the job is recorded."""
        return bool(self.redis.exists(self._key(job_id)))

    def revoke(self, job_id, also=()):
        """Remove a job nobody may send: its client was answered an error.

        Returns True when the job is gone (or never existed), False when delivery had
        already begun (then it is left alone). The keys ``also`` are removed with the job.
        """
        keys = [self._key(job_id, p) for p in ("", ":outcomes", ":recipients", ":chunks")]
        keys += [self._key(job_id, ":errors"), self.watch_key, self.index_key]
        keys.append(self._key(job_id, ":content"))
        keys += also
        return self._revoke(keys=keys, args=[job_id]) == 1

    # --- delivering a chunk ---

    def message(self, job_id):
        """Return the job's stored fields, or None when the job does not exist (or expired)."""
        fields = self.redis.hgetall(self._key(job_id))
        return fields or None

    def chunk(self, job_id, offset, count):
        """The job's fields and the chunk's ``(index, recipient)`` pairs still to deliver.

        The job's stored content (see ``create``) comes as its field ``stored_content``
        (None for a plain-text job). Returns ``(None, [])`` when the job does not exist.
        One round trip.
        """
        indexes = [str(i) for i in range(offset, offset + count)]
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._key(job_id))
            pipe.lrange(self._key(job_id, ":recipients"), offset, offset + count - 1)
            pipe.hmget(self._key(job_id, ":outcomes"), indexes)
            pipe.get(self._key(job_id, ":content"))
            job, recipients, outcomes, content = pipe.execute()
        if not job:
            return None, []
        job["stored_content"] = content
        # zip stops at the last stored recipient: a count past the end of the job is harmless.
        pairs = zip(recipients, outcomes, strict=False)
        todo = [
            (offset + position, decode_recipient(recipient))
            for position, (recipient, outcome) in enumerate(pairs)
            if outcome is None
        ]
        return job, todo

    def done_indexes(self, job_id, indexes):
        """Return the subset of recipient ``indexes`` that already have an outcome."""
        if not indexes:
            return set()
        values = self.redis.hmget(self._key(job_id, ":outcomes"), [str(i) for i in indexes])
        return {i for i, value in zip(indexes, values, strict=True) if value is not None}

    def acquire_lease(self, job_id, offset, token, seconds):
        """Take the chunk's lease for ``seconds``; return 0, or the seconds another holds it.

        Returns -1 when the job does not exist.
        """
        keys = [self._key(job_id), self.lease_key(job_id, offset), self._key(job_id, ":chunks")]
        now = self.clock()
        return self._acquire(keys=keys, args=[token, seconds, offset, f"{now:.3f}", now_iso(now)])

    def renew_lease(self, job_id, offset, token, seconds):
        """Extend our lease; False when it is no longer ours (it expired or was taken)."""
        return self._renew(keys=[self.lease_key(job_id, offset)], args=[token, seconds]) == 1

    def release_lease(self, job_id, offset, token):
        """Give our lease back."""
        self._release(keys=[self.lease_key(job_id, offset)], args=[token])

    def mark_requeued(self, job_id, offset, state, now):
        """The watchdog queues the chunk again: its state becomes ``q`` as of ``now``.

        Returns False, changing nothing, when the chunk's state is no longer ``state`` (a
        worker took it meanwhile, or it ended).
        """
        value = f"q:{now:.3f}:{state.attempt}:{state.requeues + 1}"
        keys = [self._key(job_id, ":chunks")]
        return self._mark_requeued(keys=keys, args=[offset, state.raw, value]) == 1

    def finish_chunk(self, job_id, offset):
        """The chunk has no work left: forget its state."""
        self.redis.hdel(self._key(job_id, ":chunks"), offset)

    def _outcome_arguments(self, job_id, index, outcome, error):
        keys = [
            self._key(job_id),
            self._key(job_id, ":outcomes"),
            self._key(job_id, ":errors"),
            self.watch_key,
        ]
        next_look = self.clock() + self.stall
        return keys, [index, outcome, error, now_iso(), self.ttl, next_look, job_id]

    def _outcome(self, job_id, index, outcome, error, suppressed=False):
        keys, args = self._outcome_arguments(job_id, index, outcome, error)
        if suppressed:
            args.append("1")
        return self._record(keys=keys, args=args)

    def sent_recorder(self):
        """A ``SentRecorder`` for one relay connection of a worker."""
        return SentRecorder(self)

    def record_sent(self, job_id, index):
        """Record that recipient ``index`` was accepted by the relay."""
        return self._outcome(job_id, index, "sent", "")

    def record_failed(self, job_id, index, recipient, code, message):
        """Record that recipient ``index`` failed for good, with the SMTP code and message."""
        error = json.dumps({"recipient": recipient, "code": code, "message": message})
        return self._outcome(job_id, index, "failed", error)

    def record_suppressed(self, job_id, index, recipient, reason):
        """Record that recipient ``index`` was not sent to: its address is suppressed.

        A failure like another (code null), counted in ``suppressed`` too.
        """
        error = suppressed_error(recipient, reason)
        return self._outcome(job_id, index, "failed", error, suppressed=True)

    def record_report(self, job_id, index, counter, error=None, once=True):
        """Count a report about recipient ``index`` in the job's ``counter`` field.

        ``error`` (a dict), when given, is added to the job's errors if the recipient's
        outcome is ``sent``. Returns -1 (no job), 0 (counted before) or 1.
        """
        keys = [self._key(job_id), self._key(job_id, ":outcomes"), self._key(job_id, ":errors")]
        keys.append(self._key(job_id, ":reports"))
        args = [index, counter, json.dumps(error) if error else "", "1" if once else "0"]
        return self._record_report(keys=keys, args=args)

    def count_report(self, kind):
        """Count one report ``emailsvc-bounces`` received, in the deployment's counts."""
        self.redis.hincrby(self.report_counts_key, kind, 1)

    def report_counts(self):
        """``{kind: number}`` of the reports ``emailsvc-bounces`` received."""
        return {kind: int(n) for kind, n in self.redis.hgetall(self.report_counts_key).items()}

    def schedule_retry(self, job_id, offset, count, attempt, due, error):
        """Put the chunk in the retry schedule, due at ``due``; the job says why and when."""
        next_look = due + self.stall
        member = f"{job_id}:{offset}:{count}:{attempt}"
        keys = [self._key(job_id), self._key(job_id, ":chunks"), self.retries_key]
        keys.append(self.watch_key)
        args = [f"{due:.3f}", member, offset, attempt, now_iso(), json.dumps(error)]
        args += [job_id, next_look, now_iso(due)]
        return self._schedule_retry(keys=keys, args=args) == 1

    # --- the periodic step ---

    def pop_due_retries(self, now, limit=100):
        """Take the retries due by ``now``: ``[(job_id, offset, count, attempt)]``."""
        members = self._pop_due(keys=[self.retries_key], args=[f"{now:.3f}", limit])
        due = []
        for member in members:
            job_id, offset, count, attempt = member.split(":")
            due.append((job_id, int(offset), int(count), int(attempt)))
        return due

    def claim_jobs_to_watch(self, now, limit, recheck_after):
        """Claim jobs the watchdog should look at now; look again ``recheck_after`` later."""
        return self._claim_due(keys=[self.watch_key], args=[f"{now:.3f}", limit, recheck_after])

    def watch_later(self, job_id, when):
        """Have the watchdog look at the job at ``when``."""
        self.redis.zadd(self.watch_key, {job_id: when})

    def forget(self, job_id):
        """The watchdog need not look at this job again."""
        self.redis.zrem(self.watch_key, job_id)

    def chunk_states(self, job_id):
        """``{offset: ChunkState}`` of the chunks with work left, and their leases.

        Returns ``(states, leased)`` where ``leased`` is the set of offsets under a lease.
        """
        states = {}
        for offset, value in self.redis.hgetall(self._key(job_id, ":chunks")).items():
            kind, when, attempt, requeues = (value.split(":") + ["", "", ""])[:4]
            states[int(offset)] = ChunkState(
                kind, float(when or 0), int(attempt or 0), int(requeues or 0), value
            )
        offsets = sorted(states)
        with self.redis.pipeline(transaction=False) as pipe:
            for offset in offsets:
                pipe.exists(self.lease_key(job_id, offset))
            alive = pipe.execute()
        return states, {offset for offset, on in zip(offsets, alive, strict=True) if on}

    def scheduled_retry(self, job_id, offset, count, attempt):
        """Whether that retry is still in the schedule."""
        member = f"{job_id}:{offset}:{count}:{attempt}"
        return self.redis.zscore(self.retries_key, member) is not None

    def recipients(self, job_id, offset, count):
        """The recipients of a slice, as stored."""
        values = self.redis.lrange(self._key(job_id, ":recipients"), offset, offset + count - 1)
        return [decode_recipient(value) for value in values]

    # --- reading ---

    def status(self, job_id, client):
        """The job's status document; None if it does not exist or is not ``client``'s."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hmget(self._key(job_id), *_STATUS_FIELDS)
            pipe.lrange(self._key(job_id, ":errors"), 0, -1)
            values, errors = pipe.execute()
        fields = dict(zip(_STATUS_FIELDS, values, strict=True))
        if fields["total"] is None or fields["client"] != client:
            return None
        document = _summary(job_id, fields)
        document["errors"] = [json.loads(e) for e in errors]
        if fields["status"] == "retrying":
            document["last_error"] = json.loads(fields["last_error"] or "null")
            document["next_attempt_at"] = fields["next_attempt_at"] or None
        return document

    # --- listing (the dashboard; the index also suits a later per-client listing) ---

    def page(self, status=None, before=None, limit=20, scan=500):
        """Jobs newest first: ``(documents, cursor)``; ``cursor`` continues, None at the end.

        ``before`` is a cursor from the previous page (the creation time of its last job,
        exclusive). With ``status``, jobs of other statuses are skipped, reading at most
        ``scan`` index entries per page, so a rare status cannot make one page read them all.
        """
        high = f"({before}" if before is not None else "+inf"
        found, read = [], 0
        while read < scan:
            batch = self.redis.zrevrangebyscore(
                self.index_key, high, "-inf", start=0, num=limit, withscores=True
            )
            read += len(batch)
            summaries = self._summaries([job_id for job_id, _ in batch])
            for (_, score), document in zip(batch, summaries, strict=True):
                high = f"({score!r}"
                if document is not None and status in (None, document["status"]):
                    found.append(document)
                    if len(found) == limit:
                        return found, repr(score)
            if len(batch) < limit:
                return found, None
        # Scanned enough for one page: the next one goes on from where this one stopped.
        return found, high[1:]

    def _summaries(self, job_ids):
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(self._key(job_id), *_STATUS_FIELDS)
            rows = pipe.execute()
        documents = []
        for job_id, values in zip(job_ids, rows, strict=True):
            fields = dict(zip(_STATUS_FIELDS, values, strict=True))
            if fields["total"] is None:
                documents.append(None)
                continue
            documents.append(dict(_summary(job_id, fields), client=fields["client"]))
        return documents

    def detail(self, job_id):
        """Everything an operator sees of a job, whatever its client; None if it is gone.

        The status document plus the client, subject, template, sender, request id, when
        a worker first took one of its chunks (``started_at``) and the last error.
        """
        extra = ("started_at", "subject", "template", "sender", "request_id", "deadline")
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(self._key(job_id), *_STATUS_FIELDS, *extra)
            pipe.lrange(self._key(job_id, ":errors"), 0, -1)
            values, errors = pipe.execute()
        fields = dict(zip(_STATUS_FIELDS + extra, values, strict=True))
        if fields["total"] is None:
            return None
        document = self._summaries([job_id])[0] or {}
        document.update({name: fields[name] or None for name in extra})
        document["last_error"] = json.loads(fields["last_error"] or "null")
        document["next_attempt_at"] = fields["next_attempt_at"] or None
        document["errors"] = [json.loads(e) for e in errors]
        return document

    def count_by_status(self):
        """``{status: number of jobs}`` over every job still recorded (one index read)."""
        job_ids = self.redis.zrange(self.index_key, 0, -1)
        counts = {}
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(self._key(job_id), "status")
            for status in pipe.execute() if job_ids else ():
                if status is not None:
                    counts[status] = counts.get(status, 0) + 1
        return counts

    def retries_waiting(self, now):
        """``(scheduled, due)``: chunks in the retry schedule, and those due by ``now``."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self.retries_key)
            pipe.zcount(self.retries_key, "-inf", f"{now:.3f}")
            return tuple(pipe.execute())
