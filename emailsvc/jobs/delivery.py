"""Delivering one chunk of a job: render, build, send and record each recipient."""

import logging
import time
from datetime import UTC, datetime
from email.headerregistry import Address
from email.utils import format_datetime

from ..logs import bind
from ..mail.messages import build_message
from ..mail.templates import RenderError
from ..mail.transports import ConnectionLost, DeliveryError

log = logging.getLogger(__name__)


class Deliverer:
    """Everything a worker process needs to deliver chunks, built once per process."""

    def __init__(self, store, templates, transport, sender):
        self.store = store
        self.templates = templates
        self.transport = transport
        self.sender = sender

    def deliver_chunk(self, job_id, offset, recipients):
        """Deliver the recipients of a chunk that have no outcome yet.

        Returns the recipients that failed transiently, as ``(index, recipient, error)``,
        for the caller to retry; permanent failures and successes are recorded as they
        happen. Recipients already recorded (a redelivered chunk) are skipped.
        """
        job = self.store.message(job_id)
        if job is not None:
            bind(request=job.get("request_id"))
        if job is None or job.get("status") == "cancelled":
            log.info("job %s is gone or cancelled, chunk at %d skipped", job_id, offset)
            return []
        indexes = list(range(offset, offset + len(recipients)))
        done = self.store.done_indexes(job_id, indexes)
        todo = [(i, r) for i, r in zip(indexes, recipients, strict=True) if i not in done]
        if not todo:
            return []
        started = time.monotonic()
        sent = failed = 0
        transient = []
        date = datetime.now(UTC)
        sender = self._sender(job)
        # What every recipient's template shares, worked out once per chunk, not per message.
        shared = {
            "sender": str(sender),
            "subject": job["subject"],
            "content": job["content"],
            "date": format_datetime(date, usegmt=True),
        }
        try:
            with self.transport.session() as session:
                for position, (index, recipient) in enumerate(todo):
                    try:
                        self._send_one(session, job, recipient, sender, shared, date)
                    except ConnectionLost as exc:
                        error = DeliveryError(None, str(exc), permanent=False)
                        transient.extend((i, r, error) for i, r in todo[position:])
                        break
                    except DeliveryError as exc:
                        if not exc.permanent:
                            transient.append((index, recipient, exc))
                            continue
                        self.store.record_failed(
                            job_id, index, recipient["email"], exc.code, exc.message
                        )
                        failed += 1
                    else:
                        self.store.record_sent(job_id, index)
                        sent += 1
        except ConnectionLost as exc:
            error = DeliveryError(None, str(exc), permanent=False)
            transient = [(i, r, error) for i, r in todo]
        log.info(
            "job %s chunk at %d: sent %d, failed %d, to retry %d, %.2f s",
            job_id,
            offset,
            sent,
            failed,
            len(transient),
            time.monotonic() - started,
        )
        return transient

    def _send_one(self, session, job, recipient, sender, shared, date):
        variables = {**(recipient.get("vars") or {}), **shared}
        variables.update(to=recipient["email"], name=recipient.get("name") or "")
        try:
            body = self.templates.render(job["template"], variables)
            msg = build_message(sender, recipient, job["subject"], body, now=date)
        except RenderError as exc:
            raise DeliveryError(None, str(exc), permanent=True) from exc
        except (ValueError, TypeError, KeyError) as exc:
            # A message that cannot be built for this recipient fails this recipient only.
            log.exception("job message could not be built for one recipient")
            raise DeliveryError(
                None, f"message could not be built: {exc}", permanent=True
            ) from exc
        session.send(msg, sender.addr_spec, recipient["email"])

    def _sender(self, job):
        # A job's own "from" was checked against its client's allowed domains when accepted.
        if job.get("sender"):
            return Address(addr_spec=job["sender"])
        return self.sender

    def fail_for_good(self, job_id, failures):
        """Record transient failures as final once retries are exhausted."""
        for index, recipient, error in failures:
            message = f"gave up after retries: {error.message}"
            self.store.record_failed(job_id, index, recipient["email"], error.code, message)
