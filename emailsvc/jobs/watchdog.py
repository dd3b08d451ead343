"""The periodic step every worker runs: due retries out of Redis, lost work back in the queue.

Any number of workers run it at once: each due retry and each job to look at is claimed
atomically in Redis (``JobStore.pop_due_retries``, ``claim_jobs_to_watch``), so no two
workers publish the same thing. What the watchdog re-enqueues is exactly the missing
work of a job, chunk by chunk:

- a chunk that was started but whose lease lapsed (its worker died, or Redis failed
  under it) goes back to the queue at once;
- a chunk queued long ago (``emailsvc.watchdog.stall_seconds``) that nobody started was
  lost with the queue (a broker restart, a deleted key) if the queue is empty, and goes
  back at once; while the queue holds a backlog it goes back after a wait that doubles
  each time, since it may as well be reserved by a worker that was killed;
- likewise a retry that left the schedule but never started (a worker died between the
  two, or the broker lost it).

Whatever goes back to the queue is first marked queued as of now, so it is judged again
only after its next wait.

A job whose delivery lifetime has ended gets its pending recipients failed with the last
error. Chunks are idempotent (recipients with an outcome are skipped, a lease keeps two
workers off one chunk), so re-enqueuing something that was not lost costs a little work,
never a duplicate message.
"""

import json
import logging
import time

from celery import bootsteps
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from ..logs import log_context
from ..mail.transports import DeliveryError
from .records import FINAL_STATUSES
from .tasks import publish_chunk

log = logging.getLogger(__name__)

# How many retries, and how many jobs, one run of the step takes at most.
BATCH = 200


def run_safely(app, step):
    """Run one periodic ``step``; an unavailable Redis or broker only postpones it."""
    try:
        step(app, time.time())
    except (RedisError, OperationalError) as exc:
        log.warning("periodic step %s postponed: %s", step.__name__, type(exc).__name__)


def publish_due_retries(app, now):
    """Publish the chunks whose retry is due."""
    for job_id, offset, count, attempt in app.assembly.jobs.pop_due_retries(now, BATCH):
        publish_chunk(app, job_id, offset, count, attempt)


def look_after_jobs(app, now):
    """Re-enqueue the lost work of the jobs due for a look; fail what outlived its lifetime."""
    assembly = app.assembly
    settings = assembly.settings
    stall = settings["emailsvc.watchdog.stall_seconds"]
    claimed = assembly.jobs.claim_jobs_to_watch(now, BATCH, stall)
    if not claimed:
        return
    queue_empty = _queue_is_empty(app)
    for job_id in claimed:
        with log_context(job=job_id):
            _look_after(app, job_id, now, stall, queue_empty)


def _look_after(app, job_id, now, stall, queue_empty):
    store = app.assembly.jobs
    job = store.message(job_id)
    if job is None or job.get("status") in FINAL_STATUSES:
        store.forget(job_id)
        return
    total, size = int(job["total"]), int(job["chunk_size"])
    states, leased = store.chunk_states(job_id)
    if not states:
        # Every chunk ended; outcomes were written as they came. Nothing left to watch.
        store.forget(job_id)
        return
    if now >= float(job.get("deadline") or 0):
        _fail_expired(app, job_id, job, states, total, size)
        return
    for offset, state in sorted(states.items()):
        if offset in leased:
            continue
        count = min(size, total - offset)
        if _lost(store, job_id, offset, count, state, now, stall, queue_empty):
            # Marked queued as of now first: the chunk is judged again only after its
            # next wait, and a worker that took it meanwhile keeps it to itself.
            if store.mark_requeued(job_id, offset, state, now):
                log.warning(
                    "job %s chunk at %d was lost (%s); enqueued again", job_id, offset, state.kind
                )
                publish_chunk(app, job_id, offset, count, state.attempt)


def _lost(store, job_id, offset, count, state, now, stall, queue_empty):
    """Whether a chunk nobody holds a lease on must be enqueued again.

    A started chunk without its lease was lost with its worker. A queued chunk (or a retry
    that left the schedule) that nobody started for ``stall`` seconds was lost if the
    queue is empty; while something waits in the queue it may be waiting in a backlog, or
    it may sit reserved by a worker that was killed (the Redis broker gives such messages
    back only after its visibility timeout): it is enqueued again all the same, after a
    wait that doubles each time (``stall``, then twice that, ...), so a backlog costs a
    few cheap duplicates per chunk (each finds its recipients done) and never a flood.
    """
    if state.kind == "s":
        return True
    waited = now - state.when
    if waited < stall or not (queue_empty or waited >= stall * 2**state.requeues):
        return False
    return state.kind == "q" or (
        state.kind == "r" and not store.scheduled_retry(job_id, offset, count, state.attempt)
    )


def _fail_expired(app, job_id, job, states, total, size):
    """Fail every pending recipient of a job whose delivery lifetime has ended."""
    store = app.assembly.jobs
    last = job.get("last_error")
    reason = "delivery lifetime ended"
    error = DeliveryError(None, "no attempt succeeded", permanent=True)
    if last:
        details = json.loads(last)
        error = DeliveryError(details.get("code"), details.get("message") or "", permanent=True)
    for offset in sorted(states):
        count = min(size, total - offset)
        indexes = list(range(offset, offset + count))
        done = store.done_indexes(job_id, indexes)
        recipients = store.recipients(job_id, offset, count)
        pending = [
            (index, recipient, error)
            for index, recipient in zip(indexes, recipients, strict=False)
            if index not in done
        ]
        app.assembly.deliverer.fail_for_good(job_id, pending, reason)
        store.finish_chunk(job_id, offset)
    log.warning("job %s: delivery lifetime ended, pending recipients failed", job_id)


def _queue_is_empty(app):
    """Whether nothing waits in the service's queue (so a queued chunk may have been lost)."""
    # The queue as the app declares it: RabbitMQ refuses a declaration whose arguments
    # differ from the queue's (a quorum queue, durable), and declaring it again with the
    # same ones is how AMQP reads its length. On Redis this is the length of its list.
    queue = app.amqp.queues[app.assembly.settings["emailsvc.queue"]]
    try:
        with app.connection_for_read() as connection:
            try:
                return queue.bind(connection.default_channel).queue_declare().message_count == 0
            except connection.channel_errors as exc:
                log.warning("the queue's length could not be read: %s", exc)
                return False
    except OperationalError:
        return False


class PeriodicStep(bootsteps.StartStopStep):
    """A worker bootstep: runs the periodic step in the worker's main process."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.timers = []

    def start(self, worker):
        """Start two timers: due retries every second or so, the watchdog less often."""
        settings = worker.app.assembly.settings
        every = (
            (settings["emailsvc.scheduler.interval_seconds"], publish_due_retries),
            (settings["emailsvc.watchdog.interval_seconds"], look_after_jobs),
        )
        self.timers = [
            worker.timer.call_repeatedly(seconds, run_safely, (worker.app, step))
            for seconds, step in every
        ]

    def stop(self, worker):
        """Stop the timers."""
        for timer in self.timers:
            timer.cancel()
        self.timers = []
