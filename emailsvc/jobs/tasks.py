"""The Celery side of a job: the app's configuration, its tasks and its periodic step.

Each Assembly owns its Celery app (see ``emailsvc.assembly``); tasks reach the parts they
need through ``task.app.assembly``, so they never read module-global state. Broker
messages stay small: a job's content lives in Redis, tasks carry ids and offsets.

- ``emailsvc.start_job(job_id)``: published once per accepted job; enqueues its chunks.
- ``emailsvc.deliver_chunk(job_id, offset, count, attempt)``: delivers one chunk; its
  transient failures wait in Redis (``jobs:retries``) until due, never in the broker.
- Every worker runs ``emailsvc.jobs.watchdog``'s periodic step (a worker bootstep the
  assembly adds): it publishes the retries that are due and re-enqueues lost work.
"""

import logging
import random
import time
from urllib.parse import quote

from celery import Celery
from kombu import Exchange, Queue
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from ..logs import log_context, redacted

log = logging.getLogger(__name__)

START_JOB = "emailsvc.start_job"
DELIVER_CHUNK = "emailsvc.deliver_chunk"


class EmailsvcCelery(Celery):
    """A Celery app that knows the Assembly it belongs to."""

    #: Set once by ``configure_celery``; tasks read the service's parts from it.
    assembly = None
    #: The ini file a worker was configured from (``--ini``), for its logging set-up.
    ini_file = None
    #: Options of every publish (RabbitMQ: how long to wait for the broker's confirmation).
    publish_options = {}


def new_celery_app(current=False):
    """A Celery app, not yet configured.

    Only a worker's app is made the process's "current" app: a web process may hold
    several assemblies (tests do), and none of them may take the others' place.
    """
    return EmailsvcCelery("emailsvc", set_as_current=current)


def broker_url(redis_url):
    """Translate a redis-py URL into the form kombu expects (unix sockets and Sentinel differ)."""
    group = getattr(redis_url, "sentinel", None)
    if group is not None:
        # kombu's Sentinel transport: one sentinel:// URL per sentinel, ';' between them;
        # the group's name goes in the transport options (see redis_broker).
        login = ""
        if group.username or group.password:
            login = (
                f"{quote(group.username or '', safe='')}:{quote(group.password or '', safe='')}@"
            )
        return ";".join(
            f"sentinel://{login}{_host(host)}:{port}/{group.db}" for host, port in group.sentinels
        )
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url[len("unix://") :]
    return redis_url


def _host(host):
    return f"[{host}]" if ":" in host else host


def redis_broker(settings, redis_url):
    """Celery's broker settings for a Redis broker at ``redis_url`` (a ``RedisURL``)."""
    options = {
        "visibility_timeout": settings["emailsvc.visibility_timeout_seconds"],
        # Every broker key gets our prefix, so several deployments (or test runs) can
        # share one Redis without seeing each other's queues.
        "global_keyprefix": settings["emailsvc.redis_prefix"],
    }
    if redis_url.sentinel is not None:
        timeout = settings["emailsvc.redis_timeout_seconds"]
        options["master_name"] = redis_url.sentinel.service
        # A primary that vanished without closing its connections (a host lost, not a
        # process) must be noticed, so that the broker asks the sentinels for the new one.
        options["socket_timeout"] = timeout
        options["socket_connect_timeout"] = timeout
        options["sentinel_kwargs"] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    return {"broker_url": broker_url(redis_url), "broker_transport_options": options}


def amqp_broker(settings, url):
    """Celery's broker settings for RabbitMQ at ``url``: a quorum queue, publisher confirms.

    A quorum queue is replicated to a majority of the cluster's nodes before the broker
    confirms a message, and the publisher waits for that confirmation: the work a POST
    enqueued survives the loss of a node. The queue is bound to a topic exchange so that
    the short countdowns of the chunk task (a chunk another worker still holds) wait in
    RabbitMQ (Celery's native delayed delivery), not in a worker's memory: quorum queues
    have no global QoS, so a worker cannot fetch past a message it holds for later. Celery
    sees the quorum queue (``worker_detect_quorum_queues``, on by default) and gives each
    consumer its own prefetch.
    """
    name = settings["emailsvc.queue"]
    queue = Queue(
        name,
        Exchange(name, type="topic"),
        routing_key=name,
        queue_arguments={"x-queue-type": "quorum"},
    )
    return {
        "broker_url": str(url),
        "broker_transport_options": {"confirm_publish": True},
        "broker_connection_timeout": settings["emailsvc.broker_timeout_seconds"],
        "task_queues": [queue],
        "task_default_exchange": name,
        "task_default_exchange_type": "topic",
        "task_default_routing_key": name,
    }


def configure_celery(app, settings, assembly):
    """Configure ``app`` once, from typed ``settings``, for ``assembly`` (DESIGN.md's pitfalls)."""
    if app.assembly is not None:
        raise RuntimeError("this Celery app is configured already")
    queue = settings["emailsvc.queue"]
    broker = settings["emailsvc.broker_url"]
    if broker.transport == "amqp":
        app.conf.update(amqp_broker(settings, broker))
        # A broker under flow control (a memory alarm) would hold a publish forever: a POST
        # must not hang, it gets its answer (the job is recorded; the watchdog starts it).
        app.publish_options = {"confirm_timeout": settings["emailsvc.broker_timeout_seconds"]}
    else:
        app.conf.update(redis_broker(settings, broker.redis or settings["emailsvc.redis_url"]))
    app.conf.update(
        broker_connection_retry_on_startup=True,
        # Publishing to a Redis that is down must fail fast: the client gets a 503.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        task_default_queue=queue,
        task_routes={START_JOB: {"queue": queue}, DELIVER_CHUNK: {"queue": queue}},
        task_serializer="json",
        accept_content=["json"],
        # Outcomes live in our job records; Celery's result backend is not used.
        task_ignore_result=True,
        # Acknowledge after the chunk ran, and requeue it when a worker dies mid-chunk.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # When the broker connection drops (a Redis failover, a RabbitMQ node lost), a chunk
        # in progress finishes under its lease rather than being killed mid-message; the
        # copy the broker hands out again waits for that lease.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_prefetch_multiplier=1,
        worker_pool="prefork",
        worker_hijack_root_logger=False,
        # Task events are what Flower shows of each task; off, workers only answer pings.
        worker_send_task_events=settings["emailsvc.worker.task_events"],
    )
    app.assembly = assembly
    # shared=False: the tasks belong to this app only, not to every app of the process.
    app.task(bind=True, name=START_JOB, shared=False)(start_job)
    app.task(bind=True, name=DELIVER_CHUNK, shared=False, max_retries=None)(deliver_chunk)
    return app


def publish_start(app, job_id):
    """Enqueue the start of an accepted job (one small message per job)."""
    app.tasks[START_JOB].apply_async(args=(job_id,), **app.publish_options)


def publish_chunk(app, job_id, offset, count, attempt=0):
    """Enqueue one chunk of a job: its id and its place, never its recipients."""
    app.tasks[DELIVER_CHUNK].apply_async(
        args=(job_id, offset, count, attempt), **app.publish_options
    )


def start_job(task, job_id):
    """Enqueue every chunk of a job that is still queued."""
    assembly = task.app.assembly
    with log_context(job=job_id):
        try:
            job = assembly.jobs.message(job_id)
            if job is None:
                log.info("job %s is gone before it started", job_id)
                return
            total, size = int(job["total"]), int(job["chunk_size"])
            states, _ = assembly.jobs.chunk_states(job_id)
            for offset, state in sorted(states.items()):
                if state.kind == "q":
                    publish_chunk(task.app, job_id, offset, min(size, total - offset))
        except (RedisError, OperationalError) as exc:
            # The chunks not enqueued stay queued in the job's record: the watchdog
            # enqueues them (emailsvc.watchdog.stall_seconds).
            log.warning("job %s: start interrupted (%s)", job_id, type(exc).__name__)


def backoff_seconds(settings, attempt, rand=random.random):
    """The wait before retry ``attempt + 1``: exponential, capped, with jitter (+-20 %)."""
    initial = settings["emailsvc.retry.initial_delay_seconds"]
    delay = initial * settings["emailsvc.retry.backoff_factor"] ** attempt
    delay = min(delay, settings["emailsvc.retry.max_delay_seconds"])
    # Jitter spreads the retries of many chunks that failed together (a relay restart).
    return max(0.1, delay * (0.8 + 0.4 * rand()))


def deliver_chunk(task, job_id, offset, count, attempt=0):
    """Deliver one chunk; schedule a retry for its transient failures, or fail them at the
    end of the job's delivery lifetime."""
    assembly = task.app.assembly
    with log_context(job=job_id):
        try:
            result = assembly.deliverer.deliver_chunk(job_id, offset, count)
            if result.busy_for:
                # Another worker holds the lease (this is a redelivered copy): come back
                # when it lapses, in case that worker died.
                raise task.retry(countdown=result.busy_for + 1, **task.app.publish_options)
            if result.transient:
                _retry_or_fail(assembly, job_id, offset, count, attempt, result)
        except RedisError as exc:
            # Nothing can be recorded: stop here. The chunk's lease lapses and the
            # watchdog resumes it from its outcomes once Redis answers again.
            log.warning(
                "job %s chunk at %d stopped, Redis did not answer (%s); it resumes later",
                job_id,
                offset,
                type(exc).__name__,
            )


def _retry_or_fail(assembly, job_id, offset, count, attempt, result):
    settings = assembly.settings
    index, _, error = result.transient[-1]
    last = {"code": error.code, "message": error.message}
    now = time.time()
    due = now + backoff_seconds(settings, attempt)
    deadline = float(result.job.get("deadline") or 0)
    if due >= deadline:
        log.warning(
            "job %s chunk at %d: delivery lifetime ended, %d recipients fail: %s %s",
            job_id,
            offset,
            len(result.transient),
            error.code or "",
            redacted(error.message),
        )
        assembly.deliverer.fail_for_good(job_id, result.transient, "delivery lifetime ended")
        assembly.jobs.finish_chunk(job_id, offset)
        return
    log.warning(
        "job %s chunk at %d: %d recipients to retry in %.0f s (attempt %d): %s %s",
        job_id,
        offset,
        len(result.transient),
        due - now,
        attempt + 1,
        error.code or "",
        redacted(error.message),
    )
    assembly.jobs.schedule_retry(job_id, offset, count, attempt + 1, due, last)
