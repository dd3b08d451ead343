"""Accepting a job: record it in one transaction, then ask a worker to start it.

The transaction (``JobStore.create``) is the commit point: once it succeeded the job will
be delivered (the start message is only a nudge; the watchdog starts a job whose nudge
was lost), and when it failed nothing was recorded. When Redis fails in a way that
leaves the outcome unknown, the job is looked up again; if Redis stays unreachable the
client is told 503 and the job is revoked as soon as Redis answers (``Revoker``), before
any worker could start it.
"""

import logging
import threading
import time

from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from ..mail.compose import dump_content
from .records import new_id
from .tasks import publish_start

log = logging.getLogger(__name__)

# How long a POST keeps asking whether its job was recorded after a Redis error.
CONFIRM_SECONDS = 2.0
CONFIRM_INTERVAL = 0.25


def suppressed_recipients(assembly, body, client):
    """``{index: reason}`` of the job's recipients that ``client`` has suppressed.

    One Redis round trip. Reasons the job ignores (``ignore_suppressions``) do not count.
    """
    recipients = body["recipients"]
    reasons = assembly.suppressions.reasons(client, [r["email"] for r in recipients])
    ignored = set(body.get("ignore_suppressions", ()))
    return {
        index: reason
        for index, reason in enumerate(reasons)
        if reason is not None and reason not in ignored
    }


def submit(
    assembly,
    body,
    client,
    request_id=None,
    suppressed=None,
    public_url="",
    job_id=None,
    claim=None,
    answer=None,
):
    """Record ``client``'s job for ``body`` and have it started; return the job's id.

    ``suppressed`` (``suppressed_recipients``) are recorded failed at once; a broadcast
    job's unsubscribe links start with ``emailsvc.public_url``, else with ``public_url``
    (the URL the client reached this service at). ``job_id`` is a fresh one by default.
    With ``claim`` (an idempotency key's, ``IdempotencyStore.claim``) the 202's body
    ``answer`` is kept for the key in the job's own transaction. Raises the Redis error
    when the job was not recorded: then nothing will be sent.
    """
    job_id = job_id or new_id()
    keep = None
    if claim is not None:

        def keep(pipe):
            assembly.idempotency.keep(pipe, claim, job_id, answer)

    settings = assembly.settings
    message = {
        "subject": body["subject"],
        "content": body.get("content", ""),
        "template": body["template"],
        "client": client,
        # Empty: the service's own sender (emailsvc.sender).
        "sender": body.get("from", ""),
        # Lets the worker's log lines for this job name the request that created it.
        "request_id": request_id or "",
        "stream": body.get("stream", "transactional"),
        # The worker checks the suppression list again, ignoring the same reasons.
        "ignore_suppressions": " ".join(body.get("ignore_suppressions", ())),
    }
    if message["stream"] == "broadcast":
        message["unsubscribe_base"] = settings["emailsvc.public_url"] or public_url
    now = time.time()
    deadline = now + settings["emailsvc.delivery_lifetime_seconds"]
    first_look = now + assembly.jobs.stall
    chunk_size = settings["emailsvc.chunk_size"]
    try:
        assembly.jobs.create(
            job_id,
            body["recipients"],
            message,
            chunk_size,
            deadline,
            first_look,
            # HTML, attachments, headers: stored once beside the job, never in a task.
            content=dump_content(body),
            suppressed=suppressed,
            also=keep,
        )
    except RedisError:
        # A job revoked takes its key's answer with it: the key is free again.
        if not recorded_after_all(assembly, job_id, () if claim is None else (claim.key,)):
            raise
        log.warning("job %s: Redis failed after recording it; the job stands", job_id)
    try:
        publish_start(assembly.celery, job_id)
    except (OperationalError, RedisError) as exc:
        # The job is recorded: the watchdog starts it (emailsvc.watchdog.stall_seconds).
        log.warning("job %s: its start was not published (%s)", job_id, type(exc).__name__)
    return job_id


def recorded_after_all(assembly, job_id, also=()):
    """After a Redis error on create: was the job recorded? Asks for a short while.

    When Redis cannot be asked, the job is handed to the revoker (with the keys ``also``
    to remove beside it) and False is returned: the client is told the job was refused,
    so it must never be sent.
    """
    deadline = time.monotonic() + CONFIRM_SECONDS
    while True:
        try:
            return assembly.jobs.exists(job_id)
        except RedisError:
            if time.monotonic() >= deadline:
                assembly.revoker.revoke_later(job_id, also)
                return False
            time.sleep(CONFIRM_INTERVAL)


class Revoker:
    """Removes, as soon as Redis answers, jobs whose clients were told they were refused.

    A thread of the web process retries every half second; it starts on first use.
    """

    def __init__(self, store, interval=0.5):
        self.store = store
        self.interval = interval
        #: job id -> the keys to remove with it.
        self.pending = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self._stopped = False

    def revoke_later(self, job_id, also=()):
        """Remove ``job_id`` (and the keys ``also``) as soon as possible."""
        with self._lock:
            self.pending[job_id] = tuple(also)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="revoker", daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self):
        """Stop retrying (the process is closing its connections)."""
        self._stopped = True
        self._wake.set()

    def _run(self):
        while not self._stopped:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                pending = sorted(self.pending.items())
            for job_id, also in pending:
                try:
                    removed = self.store.revoke(job_id, list(also))
                except RedisError:
                    continue
                if not removed:
                    log.error("job %s was refused to its client but had begun sending", job_id)
                with self._lock:
                    self.pending.pop(job_id, None)
