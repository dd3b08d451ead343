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
from ..mail.dkim import signed
from ..mail.messages import message_id
from ..mail.templates import RenderError
from ..mail.transports import ConnectionLost, DeliveryError
from ..mail.unsubscribe import PREVIEW_JOB, UnsubscribeLinks
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


_COPIES = ("cc", "bcc")


def _addresses(recipient):
    """A recipient's address, then its cc and bcc addresses, in the order they are read."""
    yield recipient["email"]
    for kind in _COPIES:
        for copy in recipient.get(kind) or ():
            yield copy["email"]


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


class _ChunkRun:
    """One delivery of a chunk, shared by the threads of its connections."""

    def __init__(self, job_id, todo, lease, composer, result):
        self.job_id, self.lease, self.composer = job_id, lease, composer
        self.result = result
        #: The From domain's DKIM key (``mail.dkim.SigningKey``), None when it has none.
        self.dkim_key = None
        self.stop = threading.Event()
        #: The last ``DeliveryError`` a lost connection left, for the recipients nobody took.
        self.connection_error = None
        #: An unexpected exception of a connection's thread (a Redis error, say).
        self.crashed = []
        self._todo = iter(todo)
        self._lock = threading.Lock()

    def take(self):
        """The next ``(index, recipient)`` to send, or None when none is left."""
        with self._lock:
            return next(self._todo, None)

    def take_rest(self):
        """Every recipient nobody has taken yet."""
        with self._lock:
            return list(self._todo)

    def count(self, outcome):
        with self._lock:
            setattr(self.result, outcome, getattr(self.result, outcome) + 1)

    def add_transient(self, index, recipient, error):
        with self._lock:
            self.result.transient.append((index, recipient, error))

    def lost_connection(self, exc, current=None):
        """A session ended: its current recipient (if any) waits for a retry."""
        error = DeliveryError(exc.code, str(exc), permanent=False)
        with self._lock:
            self.connection_error = error
            if current is not None:
                self.result.transient.append((*current, error))


class _NoMetrics:
    """Counts nothing: a Deliverer built without metrics (unit tests, scripts)."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


class Deliverer:
    """Everything a worker process needs to deliver chunks, built once per process."""

    def __init__(
        self,
        store,
        templates,
        transport,
        sender,
        lease_seconds=6,
        connections=1,
        metrics=None,
        pdf=None,
        signer=None,
        suppressions=None,
        unsubscribe_tokens=None,
        unsubscribe_mailbox="",
        verp=None,
    ):
        self.store = store
        #: The VERP envelope senders (``mail.verp.VerpAddresses``); None: ``sender``'s address.
        self.verp = verp
        #: The suppression lists (``jobs.suppressions.SuppressionStore``); None checks none.
        self.suppressions = suppressions
        #: Mints broadcast messages' unsubscribe tokens (``mail.unsubscribe``); None: no links.
        self.unsubscribe_tokens = unsubscribe_tokens
        #: The mailbox List-Unsubscribe also offers (``emailsvc.unsubscribe.mailbox``).
        self.unsubscribe_mailbox = unsubscribe_mailbox
        #: Counts outcomes recorded here (``emailsvc.metrics.Metrics``); None counts nothing.
        self.metrics = metrics if metrics is not None else _NoMetrics()
        self.templates = templates
        self.transport = transport
        self.sender = sender
        self.lease_seconds = lease_seconds
        #: Concurrent sessions with the relay per chunk (``emailsvc.smtp.connections``).
        self.connections = connections
        #: The PDF renderer (``mail.pdf``), None without the pdf extra.
        self.pdf = pdf
        #: The DKIM keys of the sender domains (``mail.dkim.DKIMSigner``); None signs nothing.
        self.signer = signer

    def composer(self, job, date, job_id=PREVIEW_JOB):
        """The ``Composer`` of a job's messages, with its stored content decoded once."""
        content = load_content(job.get("stored_content"))
        links = None
        if job.get("stream") == "broadcast" and self.unsubscribe_tokens is not None:
            links = UnsubscribeLinks(
                self.unsubscribe_tokens,
                job.get("client", ""),
                job_id,
                job.get("unsubscribe_base", ""),
                self.unsubscribe_mailbox,
            )
        sender = self._sender(job)
        return Composer(self.templates, job, content, sender, date, self.pdf, links)

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
        if self.suppressions is not None and todo:
            todo = self._unsuppressed(job_id, job, todo, result)
        if not todo:
            return result
        started = time.monotonic()
        date = datetime.now(UTC)
        try:
            # Once per chunk: the job's content read and decoded, its attachments built.
            composer = self.composer(job, date, job_id)
        except (ValueError, TypeError, KeyError) as exc:
            log.exception("job %s: its stored content cannot be read", job_id)
            error = DeliveryError(None, f"message could not be built: {exc}", permanent=True)
            for index, recipient in todo:
                email = recipient["email"]
                if self.store.record_failed(job_id, index, email, None, error.message) == 1:
                    self.metrics.message_failed(None)
                result.failed += 1
            return result
        run = _ChunkRun(job_id, todo, lease, composer, result)
        if self.signer is not None:
            # One look-up per chunk: every message of a job has the same From domain.
            run.dkim_key = self.signer.key_for(composer.sender.domain)
        connections = min(self.connections, len(todo))
        if composer.pdf_attachments:
            # PDFs are rendered per recipient by WeasyPrint (Pango, fontconfig), which is
            # not made to render from several threads at once.
            connections = 1
        if connections == 1:
            self._send_over_one_connection(run)
        else:
            # The relay's replies are waited for with the GIL released: N connections
            # overlap N round trips. Each takes the next recipient of the chunk in turn.
            threads = [
                threading.Thread(target=self._send_over_one_connection, args=(run,))
                for _ in range(connections)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if run.crashed:
            # A Redis error (or worse) in one connection's thread: as without threads, it
            # ends the chunk; the outcomes recorded so far stand.
            raise run.crashed[0]
        if not result.interrupted and run.connection_error is not None:
            # What no connection could take is retried later with the relay's last word.
            error = run.connection_error
            result.transient.extend((i, r, error) for i, r in run.take_rest())
        self.metrics.messages_deferred(len(result.transient))
        self.metrics.chunk_duration.observe(time.monotonic() - started)
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

    def _unsuppressed(self, job_id, job, todo, result):
        """The chunk's recipients less those suppressed since the job was accepted.

        One Redis read for the whole chunk, over every address (copies too). Each
        suppressed recipient is recorded failed (and suppressed), once, and not sent to;
        a suppressed cc or bcc address is left out of its recipient's message.
        """
        addresses = [address for _, recipient in todo for address in _addresses(recipient)]
        reasons = iter(self.suppressions.reasons(job.get("client", ""), addresses))
        ignored = set((job.get("ignore_suppressions") or "").split())

        def blocked():
            reason = next(reasons)
            return reason if reason is not None and reason not in ignored else None

        left, copies_left_out = [], 0
        for index, recipient in todo:
            reason = blocked()
            # Read in the order of _addresses: the recipient, its cc, its bcc.
            kept = {
                kind: [c for c in recipient.get(kind) or () if not blocked()] for kind in _COPIES
            }
            if reason is not None:
                if self.store.record_suppressed(job_id, index, recipient["email"], reason) == 1:
                    self.metrics.message_failed(None)
                result.failed += 1
                continue
            dropped = sum(len(recipient.get(kind) or ()) - len(kept[kind]) for kind in _COPIES)
            if dropped:
                copies_left_out += dropped
                recipient = {**recipient, **kept}
            left.append((index, recipient))
        if len(left) < len(todo) or copies_left_out:
            log.info(
                "job %s: %d suppressed recipients not sent to, %d suppressed copies left out",
                job_id,
                len(todo) - len(left),
                copies_left_out,
            )
        return left

    def _send_over_one_connection(self, run):
        """Send the chunk's next recipients over one session until none is left."""
        recorder = self.store.sent_recorder()
        try:
            self._send_with(run, recorder)
            # The last message's record, written after its 250, is confirmed here.
            self._confirm(recorder)
        except Exception as exc:  # noqa: BLE001 - raised again by the chunk's own thread
            run.crashed.append(exc)
            run.stop.set()
        finally:
            recorder.close()

    def _confirm(self, recorder):
        # Counted once per recipient: a redelivered chunk records nothing twice.
        if recorder.confirm() == 1:
            self.metrics.message_sent()

    def _send_with(self, run, recorder):
        result = run.result

        def before_data():
            # The previous message's outcome is confirmed before this one is handed over.
            self._confirm(recorder)

        try:
            with self.transport.session() as session:
                while not run.stop.is_set():
                    if run.lease.lost.is_set():
                        result.interrupted = True
                        run.stop.set()
                        return
                    item = run.take()
                    if item is None:
                        return
                    index, recipient = item
                    msgid = message_id(run.job_id, index, run.composer.sender.domain)
                    try:
                        self._send_one(session, run, item, msgid, before_data)
                    except ConnectionLost as exc:
                        run.lost_connection(exc, (index, recipient))
                        return
                    except DeliveryError as exc:
                        if not exc.permanent:
                            run.add_transient(index, recipient, exc)
                            continue
                        recorded = self.store.record_failed(
                            run.job_id, index, recipient["email"], exc.code, exc.message
                        )
                        if recorded == 1:
                            self.metrics.message_failed(exc.code)
                        run.count("failed")
                    else:
                        recorder.write(run.job_id, index)
                        run.count("sent")
        except ConnectionLost as exc:
            # The session could not be opened (or closed): others may go on without it.
            run.lost_connection(exc)

    def _send_one(self, session, run, item, msgid, before_data=None):
        index, recipient = item
        composer = run.composer
        try:
            # Signed last, on the bytes the relay receives (a SigningError is a ValueError).
            msg = signed(run.dkim_key, composer.message(recipient, msgid))
        except RenderError as exc:
            raise DeliveryError(None, str(exc), permanent=True) from exc
        except (ValueError, TypeError, KeyError) as exc:
            # A message that cannot be built for this recipient fails this recipient only.
            log.exception("job message could not be built for one recipient")
            raise DeliveryError(
                None, f"message could not be built: {exc}", permanent=True
            ) from exc
        # The envelope only: the From header (and so DKIM's alignment) stays the sender's.
        envelope_from = composer.sender.addr_spec
        if self.verp is not None:
            envelope_from = self.verp.envelope_sender(envelope_from, run.job_id, index)
        with self.metrics.smtp_duration.time():
            session.send(msg, envelope_from, composer.envelope(recipient), msgid, before_data)

    def _sender(self, job):
        # A job's own "from" was checked against its client's allowed domains when accepted.
        if job.get("sender"):
            return Address(addr_spec=job["sender"])
        return self.sender

    def fail_for_good(self, job_id, failures, reason):
        """Record failures as final: ``reason`` says why, the last error follows it."""
        for index, recipient, error in failures:
            message = f"{reason}; last error: {error.message}"
            recorded = self.store.record_failed(
                job_id, index, recipient["email"], error.code, message
            )
            if recorded == 1:
                self.metrics.message_failed(error.code)
