"""The Celery side of a job: the app's configuration and the chunk delivery task.

Each Assembly owns its Celery app (see ``emailsvc.assembly``); the task reaches the parts
it needs through ``task.app.assembly``, so it never reads module-global state.
"""

import logging

from celery import Celery

from ..logs import log_context

log = logging.getLogger(__name__)

DELIVER_CHUNK = "emailsvc.deliver_chunk"


class EmailsvcCelery(Celery):
    """A Celery app that knows the Assembly it belongs to."""

    #: Set once by ``configure_celery``; tasks read the service's parts from it.
    assembly = None
    #: The ini file a worker was configured from (``--ini``), for its logging set-up.
    ini_file = None


def new_celery_app(current=False):
    """A Celery app, not yet configured.

    Only a worker's app is made the process's "current" app: a web process may hold
    several assemblies (tests do), and none of them may take the others' place.
    """
    return EmailsvcCelery("emailsvc", set_as_current=current)


def broker_url(redis_url):
    """Translate a redis-py URL into the form kombu expects (unix sockets differ)."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url[len("unix://") :]
    return redis_url


def configure_celery(app, settings, assembly):
    """Configure ``app`` once, from typed ``settings``, for ``assembly`` (DESIGN.md's pitfalls)."""
    if app.assembly is not None:
        raise RuntimeError("this Celery app is configured already")
    queue = settings["emailsvc.queue"]
    app.conf.update(
        broker_url=broker_url(settings["emailsvc.redis_url"]),
        broker_transport_options={
            "visibility_timeout": settings["emailsvc.visibility_timeout_seconds"],
            # Every broker key gets our prefix, so several deployments (or test runs) can
            # share one Redis without seeing each other's queues.
            "global_keyprefix": settings["emailsvc.redis_prefix"],
        },
        broker_connection_retry_on_startup=True,
        # Publishing to a Redis that is down must fail fast: the client gets a 503.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        task_default_queue=queue,
        task_routes={DELIVER_CHUNK: {"queue": queue}},
        task_serializer="json",
        accept_content=["json"],
        # Outcomes live in our job records; Celery's result backend is not used.
        task_ignore_result=True,
        # Acknowledge after the chunk ran, and requeue it when a worker dies mid-chunk.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_pool="prefork",
        worker_hijack_root_logger=False,
    )
    app.assembly = assembly
    # shared=False: the task belongs to this app only, not to every app of the process.
    app.task(bind=True, name=DELIVER_CHUNK, shared=False)(deliver_chunk)
    return app


def retry_countdown(settings, retries):
    """Exponential backoff in seconds, capped far below the broker's visibility timeout."""
    base = settings["emailsvc.retry.backoff_seconds"]
    cap = settings["emailsvc.retry.backoff_max_seconds"]
    visibility = settings["emailsvc.visibility_timeout_seconds"]
    # A countdown longer than the visibility timeout makes Redis redeliver the task
    # while it waits, so the same chunk would run several times.
    return min(base * 2**retries, cap, visibility // 2)


def deliver_chunk(task, job_id, offset, recipients):
    """Deliver one chunk; retry transient failures with backoff, then fail them for good."""
    assembly = task.app.assembly
    with log_context(job=job_id):
        deliverer = assembly.deliverer
        transient = deliverer.deliver_chunk(job_id, offset, recipients)
        if not transient:
            return
        settings = assembly.settings
        if task.request.retries < settings["emailsvc.retry.max_retries"]:
            assembly.jobs.mark_retrying(job_id)
            # The retry runs the same chunk; recipients that got an outcome are skipped.
            raise task.retry(countdown=retry_countdown(settings, task.request.retries))
        deliverer.fail_for_good(job_id, transient)


def publish_chunk(app, job_id, offset, recipients):
    """Enqueue one chunk of a job on ``app``'s broker."""
    # A short argsrepr keeps addresses out of broker headers and worker logs, and spares
    # Celery from formatting every recipient of a large job.
    argsrepr = f"({job_id!r}, {offset}, <{len(recipients)} recipients>)"
    app.tasks[DELIVER_CHUNK].apply_async(args=(job_id, offset, recipients), argsrepr=argsrepr)
