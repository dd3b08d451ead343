"""The Celery application, its configuration from our settings, and the delivery task."""

import logging

import kombu.pools
from celery import Celery

from . import store as redis_store
from .delivery import Deliverer
from .jobs import JobStore
from .mailer import transport_from_settings
from .messages import sender_address
from .rendering import Templates
from .settings import as_int

log = logging.getLogger(__name__)

app = Celery("emailsvc")

DELIVER_CHUNK = "emailsvc.deliver_chunk"


def configure(celery_app, settings):
    """Configure ``celery_app`` from emailsvc settings (see DESIGN.md's pitfalls)."""
    visibility = as_int(settings, "emailsvc.visibility_timeout_seconds", minimum=60)
    transport_options = {
        "visibility_timeout": visibility,
        # Every broker key gets our prefix, so several deployments (or test runs) can
        # share one Redis without seeing each other's queues.
        "global_keyprefix": settings["emailsvc.redis_prefix"],
    }
    queue = settings["emailsvc.queue"]
    # Broker connections are pooled process-wide by URL alone, so connections made under a
    # previous configuration (another key prefix) would be reused: drop them.
    kombu.pools.reset()
    celery_app._after_fork()  # noqa: SLF001 - Celery's own way to forget its pools
    celery_app.conf.update(
        broker_url=redis_store.broker_url(settings["emailsvc.redis_url"]),
        broker_transport_options=transport_options,
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
        emailsvc_settings=settings,
    )
    _context.clear()
    return celery_app


_context = {}


def deliverer():
    """The process-wide Deliverer, built lazily (after the prefork pool forked)."""
    if "deliverer" not in _context:
        settings = app.conf.emailsvc_settings
        client = redis_store.connect(settings)
        store = JobStore(
            client,
            settings["emailsvc.redis_prefix"],
            as_int(settings, "emailsvc.job_ttl_seconds", minimum=1),
        )
        _context["deliverer"] = Deliverer(
            store,
            Templates(settings["emailsvc.template_dir"]),
            transport_from_settings(settings),
            sender_address(settings),
        )
    return _context["deliverer"]


def retry_countdown(settings, retries):
    """Exponential backoff in seconds, capped far below the broker's visibility timeout."""
    base = as_int(settings, "emailsvc.retry.backoff_seconds", minimum=1)
    cap = as_int(settings, "emailsvc.retry.backoff_max_seconds", minimum=1)
    visibility = as_int(settings, "emailsvc.visibility_timeout_seconds", minimum=60)
    # A countdown longer than the visibility timeout makes Redis redeliver the task
    # while it waits, so the same chunk would run several times.
    return min(base * 2**retries, cap, visibility // 2)


@app.task(bind=True, name=DELIVER_CHUNK)
def deliver_chunk(self, job_id, offset, recipients):
    """Deliver one chunk; retry transient failures with backoff, then fail them for good."""
    worker = deliverer()
    transient = worker.deliver_chunk(job_id, offset, recipients)
    if not transient:
        return
    settings = app.conf.emailsvc_settings
    if self.request.retries < as_int(settings, "emailsvc.retry.max_retries"):
        worker.store.mark_retrying(job_id)
        # The retry runs the same chunk; recipients that got an outcome are skipped.
        raise self.retry(countdown=retry_countdown(settings, self.request.retries))
    worker.fail_for_good(job_id, transient)
