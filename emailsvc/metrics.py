"""Prometheus metrics: what the service counts, ``GET /metrics``, and the worker's exporter.

Counters and histograms are ``prometheus_client`` objects, counted where things happen
(the HTTP tween below, the POST, the delivery of a chunk). Workers are prefork processes:
with ``emailsvc.metrics.dir`` set, every process writes its values into files of that
folder (prometheus_client's multiprocess mode) and a scrape adds them up, so a pool
child's counts stay after it exits and its replacement counts on. Gauges that read Redis
(jobs by status, queue depth, retries waiting) are computed at scrape time by
``RedisCollector``, never counted.

The folder must belong to one deployment on one host and be empty when it starts (a
tmpfs, or ``make run`` emptying ``var/metrics``): process ids name its files.
"""

import hmac
import ipaddress
import logging
import os
import time

from pyramid.httpexceptions import HTTPForbidden, HTTPUnauthorized
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.tweens import EXCVIEW
from redis.exceptions import RedisError

from .api.auth import bearer_token
from .api.errors import error_response

log = logging.getLogger(__name__)

# Seconds: an SMTP send takes milliseconds on a local relay, seconds on a slow one.
SMTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CHUNK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


def _prometheus(directory):
    """Import prometheus_client, in multiprocess mode when ``directory`` is given.

    prometheus_client picks its value store from ``PROMETHEUS_MULTIPROC_DIR`` when it is
    first imported; the setting may come from the ini, read later, so the choice is made
    again here, before the first metric of this process is built.
    """
    if directory:
        os.makedirs(directory, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    import prometheus_client
    import prometheus_client.multiprocess
    from prometheus_client import values

    if directory:
        values.ValueClass = values.get_value_class()
    return prometheus_client


def code_class(code):
    """``5xx``, ``4xx``, ... for an SMTP reply code; ``none`` when no relay answered."""
    return f"{code // 100}xx" if isinstance(code, int) and 100 <= code < 1000 else "none"


class Metrics:
    """The service's counters and histograms, in a registry of their own."""

    def __init__(self, directory=""):
        pc = _prometheus(directory)
        self.directory = directory
        #: The prometheus_client module, imported once the mode is chosen.
        self.client = pc
        self.registry = pc.CollectorRegistry()
        r = self.registry
        self.http_requests = pc.Counter(
            "emailsvc_http_requests",
            "HTTP requests answered, by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_duration = pc.Histogram(
            "emailsvc_http_request_duration_seconds",
            "Time to answer an HTTP request, by route and method",
            ["route", "method"],
            registry=r,
        )
        self.jobs_accepted = pc.Counter(
            "emailsvc_jobs_accepted", "Jobs accepted (202), by client", ["client"], registry=r
        )
        self.recipients_accepted = pc.Counter(
            "emailsvc_recipients_accepted",
            "Recipients of the accepted jobs, by client",
            ["client"],
            registry=r,
        )
        self.messages_sent = pc.Counter(
            "emailsvc_messages_sent", "Messages the relay accepted (recorded once)", registry=r
        )
        self.messages_failed = pc.Counter(
            "emailsvc_messages_failed",
            "Messages failed for good, by SMTP code class (none: no relay answer)",
            ["code_class"],
            registry=r,
        )
        self.messages_retried = pc.Counter(
            "emailsvc_messages_retried",
            "Messages that failed transiently and wait for a retry",
            registry=r,
        )
        self.smtp_duration = pc.Histogram(
            "emailsvc_smtp_send_duration_seconds",
            "Time the relay took to take one message",
            buckets=SMTP_BUCKETS,
            registry=r,
        )
        self.chunk_duration = pc.Histogram(
            "emailsvc_chunk_duration_seconds",
            "Time one delivery of a chunk took",
            buckets=CHUNK_BUCKETS,
            registry=r,
        )

    # --- what the service counts ---

    def request_answered(self, route, method, status, seconds):
        """One HTTP request answered."""
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_duration.labels(route, method).observe(seconds)

    def job_accepted(self, client, recipients):
        """One job accepted for ``client`` with ``recipients`` recipients."""
        self.jobs_accepted.labels(client).inc()
        self.recipients_accepted.labels(client).inc(recipients)

    def message_sent(self):
        """One recipient recorded sent."""
        self.messages_sent.inc()

    def message_failed(self, code):
        """One recipient recorded failed, with the relay's code (None: no answer)."""
        self.messages_failed.labels(code_class(code)).inc()

    def messages_deferred(self, count):
        """``count`` recipients failed transiently and wait for a retry."""
        if count:
            self.messages_retried.inc(count)

    # --- exposition ---

    def scrape_registry(self, *collectors):
        """A new registry of everything one scrape shows: the counts, plus ``collectors``.

        In multiprocess mode the counts are read from the files of every process of the
        deployment (dead ones included), not from this process's objects. A registry per
        scrape: concurrent scrapes never see each other's collectors.
        """
        registry = self.client.CollectorRegistry()
        if self.directory:
            self.client.multiprocess.MultiProcessCollector(registry, path=self.directory)
        else:
            registry.register(_Counts(self.registry))
        for collector in collectors:
            registry.register(collector)
        return registry

    def exposition(self, *collectors):
        """The text format of a scrape: ``(body bytes, content type)``."""
        registry = self.scrape_registry(*collectors)
        return self.client.generate_latest(registry), self.client.CONTENT_TYPE_LATEST


class _Counts:
    """A collector that shows what this process counted (single-process mode)."""

    def __init__(self, registry):
        self.registry = registry

    def collect(self):
        """The families of the process's own registry."""
        return self.registry.collect()


class RedisCollector:
    """Gauges read from Redis at scrape time: jobs by status, queue depth, retries waiting,
    and emailsvc-bounces' counts."""

    def __init__(self, assembly):
        self.assembly = assembly

    def collect(self):
        """Read Redis now; a Redis that does not answer gives ``emailsvc_redis_up 0``."""
        from prometheus_client.core import GaugeMetricFamily

        assembly = self.assembly
        up = GaugeMetricFamily("emailsvc_redis_up", "Whether Redis answered this scrape")
        try:
            counts = assembly.jobs.count_by_status()
            scheduled, due = assembly.jobs.retries_waiting(time.time())
            depth = queue_depth(assembly)
            reports = assembly.jobs.report_counts()
        except RedisError as exc:
            log.warning("metrics: Redis did not answer (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily(
            "emailsvc_jobs", "Jobs still recorded, by status", labels=["status"]
        )
        for status in ("queued", "sending", "retrying", "sent", "partially_failed", "failed"):
            jobs.add_metric([status], counts.pop(status, 0))
        for status, count in sorted(counts.items()):
            jobs.add_metric([status], count)
        yield jobs
        if depth is not None:
            queue = GaugeMetricFamily(
                "emailsvc_queue_depth", "Tasks waiting in the broker's queue", labels=["queue"]
            )
            queue.add_metric([assembly.settings["emailsvc.queue"]], depth)
            yield queue
        retries = GaugeMetricFamily(
            "emailsvc_retries_scheduled", "Chunks waiting in Redis for a retry (jobs:retries)"
        )
        retries.add_metric([], scheduled)
        yield retries
        overdue = GaugeMetricFamily(
            "emailsvc_retries_due", "Of those, chunks whose retry is due and not yet published"
        )
        overdue.add_metric([], due)
        yield overdue
        yield _bounce_reports(reports)


# What emailsvc-bounces counts in Redis (``JobStore.report_counts``), always shown.
_REPORT_KINDS = ("hard_bounce", "soft_bounce", "complaint", "other", "dead_letter")


def _bounce_reports(counts):
    """The reports emailsvc-bounces received, by kind: it serves no /metrics of its own."""
    from prometheus_client.core import CounterMetricFamily

    family = CounterMetricFamily(
        "emailsvc_bounce_reports",
        "Reports emailsvc-bounces received, by kind (dead_letter: kept, not acted on)",
        labels=["kind"],
    )
    for kind in _REPORT_KINDS:
        family.add_metric([kind], counts.pop(kind, 0))
    for kind, count in sorted(counts.items()):
        family.add_metric([kind], count)
    return family


def queue_depth(assembly):
    """Tasks waiting in the Redis broker's queue; None when the broker is RabbitMQ.

    kombu keeps a Redis queue as a list named after the queue, under the key prefix.
    """
    settings = assembly.settings
    broker = settings["emailsvc.broker_url"]
    if broker.transport == "amqp":
        return None
    key = settings["emailsvc.redis_prefix"] + settings["emailsvc.queue"]
    if broker.redis and broker.redis != settings["emailsvc.redis_url"]:
        client = assembly.celery.connection_for_read().default_channel.client
        return client.llen(key)
    return assembly.redis.llen(key)


# --- the web side: the tween and GET /metrics ---


def metrics_tween_factory(handler, registry):
    """A tween that counts every request by route, method and status, and times it."""
    metrics = registry.emailsvc.metrics

    def metrics_tween(request):
        started = time.monotonic()
        status = 500
        try:
            response = handler(request)
            status = response.status_code
            return response
        finally:
            route = request.matched_route.name if request.matched_route else "unmatched"
            metrics.request_answered(route, request.method, status, time.monotonic() - started)

    return metrics_tween


def _refusal(request, settings):
    """The error answer for a scraper the settings do not let in, or None."""
    networks = settings["emailsvc.metrics.allow"]
    if networks:
        try:
            address = ipaddress.ip_address(request.remote_addr or "")
        except ValueError:
            address = None
        if address is None or not any(address in network for network in networks):
            return error_response(HTTPForbidden, "", "", "This address may not read the metrics")
    token = settings["emailsvc.metrics.token"]
    if token:
        given = bearer_token(request) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return error_response(
                HTTPUnauthorized,
                "header",
                "Authorization",
                "Send 'Authorization: Bearer <emailsvc.metrics.token>'",
                **{"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    return None


def metrics_view(request):
    """``GET /metrics``: the Prometheus text format (counts of every process, Redis gauges)."""
    assembly = request.registry.emailsvc
    refusal = _refusal(request, assembly.settings)
    if refusal is not None:
        return refusal
    body, content_type = assembly.metrics.exposition(RedisCollector(assembly))
    response = Response(body=body)
    response.headers["Content-Type"] = content_type
    response.headers["Cache-Control"] = "no-store"
    return response


def includeme(config):
    """``GET /metrics`` and the tween that counts requests."""
    config.add_route("metrics", "/metrics", request_method="GET")
    config.add_view(metrics_view, route_name="metrics", permission=NO_PERMISSION_REQUIRED)
    # Over the exception view, so that error answers are counted with their status.
    config.add_tween("emailsvc.metrics.metrics_tween_factory", over=EXCVIEW)


# --- the worker side: an exporter on a port of its own ---


def start_worker_exporter(metrics, port, host="0.0.0.0"):  # noqa: S104  # nosec B104
    """Serve the counts of every worker process on ``port`` (from the worker's main process).

    For deployments where the web process cannot read the workers' folder (another
    container); the Redis gauges stay on the web's ``/metrics``.
    """
    registry = metrics.scrape_registry()
    server, thread = metrics.client.start_http_server(port, addr=host, registry=registry)
    log.info("worker metrics on http://%s:%d/metrics", host, port)
    return server, thread
