"""Delivering one chunk of a job: under its lease, render, build, send and record each recipient.

A chunk is delivered by one worker at a time: the worker takes the chunk's lease in Redis
and a thread renews it while the chunk runs. A worker that dies stops renewing, the lease
lapses within ``emailsvc.lease_seconds``, and the chunk can be taken again (by the
broker's redelivery or the watchdog). Recipients that already have an outcome are
skipped, so a chunk delivered again sends only what was not recorded.
"""

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address

from redis.exceptions import RedisError

from ..logs import bind
from ..mail.compose import Composer, load_content
from ..mail.messages import message_id
from ..mail.templates import RenderError
from ..mail.transports import ConnectionLost, DeliveryError
from .records import FINAL_STATUSES

log = logging.getLogger(__name__)


@dataclass
class ChunkResult:
    """What one delivery of a chunk did, for the task to decide what comes next."""

    sent: int = 0
    failed: int = 0
    #: ``(index, recipient, DeliveryError)`` of the recipients that failed transiently.
    transient: list = field(default_factory=list)
    #: Seconds another worker still holds the chunk's lease (it is being delivered).
    busy_for: int = 0
    #: The job is gone, cancelled or final: nothing to do.
    gone: bool = False
    #: The lease was lost mid-chunk; whoever holds it now (or the watchdog) goes on.
    interrupted: bool = False
    #: The job's record, when it was read (deadline, request id, ...).
    job: dict | None = None


class LeaseKeeper:
    """Renews a chunk's lease from a thread while the chunk is delivered; gives it back after.

    ``lost`` is set when the lease could not be renewed (it lapsed, was taken, or Redis
    did not answer): the delivery must then stop before its next message.
    """

    def __init__(self, store, job_id, offset, token, seconds):
        self.store = store
        self.args = (job_id, offset, token)
        self.seconds = seconds
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="lease", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def _renew(self):
        while not self._stop.wait(self.seconds / 3):
            try:
                if not self.store.renew_lease(*self.args, self.seconds):
                    self.lost.set()
                    return
            except RedisError:
                self.lost.set()
                return

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        try:
            self.store.release_lease(*self.args)
        except RedisError:
            # The lease lapses by itself within its TTL.
            log.debug("lease of chunk at %s not released: Redis did not answer", self.args[1])


class Deliverer:
    """Everything a worker process needs to deliver chunks, built once per process."""

    def __init__(self, store, templates, transport, sender, lease_seconds=6, pdf=None):
        self.store = store
        self.templates = templates
        self.transport = transport
        self.sender = sender
        self.lease_seconds = lease_seconds
        #: The PDF renderer (``mail.pdf``), None without the pdf extra.
        self.pdf = pdf

    def composer(self, job, date):
        """The ``Composer`` of a job's messages, with its stored content decoded once."""
        content = load_content(job.get("stored_content"))
        return Composer(self.templates, job, content, self._sender(job), date, self.pdf)

    def deliver_chunk(self, job_id, offset, count):
        """Deliver the recipients ``offset .. offset+count-1`` that have no outcome yet.

        Successes and permanent failures are recorded as they happen; the transient
        failures are returned in the ``ChunkResult`` for the caller to schedule a retry.
        Redis errors propagate: nothing more can be recorded, and the chunk is resumed
        from its outcomes when Redis answers again.
        """
        token = uuid.uuid4().hex
        held = self.store.acquire_lease(job_id, offset, token, self.lease_seconds)
        if held < 0:
            return ChunkResult(gone=True)
        if held > 0:
            return ChunkResult(busy_for=held)
        with LeaseKeeper(self.store, job_id, offset, token, self.lease_seconds) as lease:
            job, todo = self.store.chunk(job_id, offset, count)
            if job is None or job.get("status") in FINAL_STATUSES:
                log.info("job %s is gone or final, chunk at %d skipped", job_id, offset)
                return ChunkResult(gone=True, job=job)
            bind(request=job.get("request_id"))
            result = self._deliver(job_id, offset, job, todo, lease)
            result.job = job
        if not result.transient and not result.interrupted:
            self.store.finish_chunk(job_id, offset)
        return result

    def _deliver(self, job_id, offset, job, todo, lease):
        result = ChunkResult()
        if not todo:
            return result
        started = time.monotonic()
        date = datetime.now(UTC)
        sender = self._sender(job)
        try:
            # Once per chunk: the job's content read and decoded, its attachments built.
            composer = self.composer(job, date)
        except (ValueError, TypeError, KeyError) as exc:
            log.exception("job %s: its stored content cannot be read", job_id)
            error = DeliveryError(None, f"message could not be built: {exc}", permanent=True)
            for index, recipient in todo:
                self.store.record_failed(job_id, index, recipient["email"], None, error.message)
                result.failed += 1
            return result
        try:
            with self.transport.session() as session:
                for position, (index, recipient) in enumerate(todo):
                    if lease.lost.is_set():
                        result.interrupted = True
                        break
                    msgid = message_id(job_id, index, sender.domain)
                    try:
                        self._send_one(session, composer, recipient, msgid)
                    except ConnectionLost as exc:
                        error = DeliveryError(exc.code, str(exc), permanent=False)
                        result.transient.extend((i, r, error) for i, r in todo[position:])
                        break
                    except DeliveryError as exc:
                        if not exc.permanent:
                            result.transient.append((index, recipient, exc))
                            continue
                        self.store.record_failed(
                            job_id, index, recipient["email"], exc.code, exc.message
                        )
                        result.failed += 1
                    else:
                        self.store.record_sent(job_id, index)
                        result.sent += 1
        except ConnectionLost as exc:
            error = DeliveryError(exc.code, str(exc), permanent=False)
            result.transient = [(i, r, error) for i, r in todo]
        log.info(
            "job %s chunk at %d: sent %d, failed %d, to retry %d, %.2f s",
            job_id,
            offset,
            result.sent,
            result.failed,
            len(result.transient),
            time.monotonic() - started,
        )
        return result

    def _send_one(self, session, composer, recipient, msgid):
        try:
            msg, _ = composer.compose(recipient, msgid)
        except RenderError as exc:
            raise DeliveryError(None, str(exc), permanent=True) from exc
        except (ValueError, TypeError, KeyError) as exc:
            # A message that cannot be built for this recipient fails this recipient only.
            log.exception("job message could not be built for one recipient")
            raise DeliveryError(
                None, f"message could not be built: {exc}", permanent=True
            ) from exc
        session.send(msg, composer.sender.addr_spec, composer.envelope(recipient))

    def _sender(self, job):
        # A job's own "from" was checked against its client's allowed domains when accepted.
        if job.get("sender"):
            return Address(addr_spec=job["sender"])
        return self.sender

    def fail_for_good(self, job_id, failures, reason):
        """Record failures as final: ``reason`` says why, the last error follows it."""
        for index, recipient, error in failures:
            message = f"{reason}; last error: {error.message}"
            self.store.record_failed(job_id, index, recipient["email"], error.code, message)
