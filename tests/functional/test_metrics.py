"""Metrics through real processes: a job delivered by a worker with two pool children, one
of them killed mid-job, and the counts on /metrics (and the worker's exporter) equal the
job's numbers exactly."""

import json
import os
import signal
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from ..harness import free_port, wait_for


def scrape(url):
    """``{(sample name, frozenset of labels): value}`` of one scrape."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0)


def post(url, body):
    request = urllib.request.Request(  # noqa: S310
        url + "/email",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def status(url):
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def test_counts_add_up_across_pool_children_even_when_one_is_killed_mid_job(
    settings, smtp_server, start_web, start_worker, tmp_path
):
    worker_port = free_port()
    settings.update(
        {
            "emailsvc.metrics.dir": str(tmp_path / "metrics"),
            "emailsvc.metrics.worker_port": str(worker_port),
            "emailsvc.chunk_size": "4",
            # A killed child's chunk is taken up again soon.
            "emailsvc.lease_seconds": "2",
        }
    )
    web = start_web()
    worker = start_worker(concurrency=2)
    children = worker.tree()[1:]
    assert len(children) >= 2
    # The relay takes 0.2 s per "slow" message (tests/harness.py), refuses "reject" ones,
    # and keeps the "hold" one waiting: the child sending it is killed in the middle of
    # that SMTP exchange, as most kills land, with its earlier outcomes recorded.
    recipients = [f"slow{i}@example.org" for i in range(12)] + ["hold@example.org"]
    recipients += [f"slow{i}@example.org" for i in range(12, 23)]
    recipients += [f"reject{i}@example.org" for i in range(3)]
    job = post(web.url, {"recipients": recipients, "subject": "s", "content": "c"})
    assert smtp_server.handler.held.wait(60)
    client_port = smtp_server.handler.held_peer[1]
    busy = [
        child
        for child in children
        if any(c.laddr.port == client_port for c in child.net_connections(kind="tcp"))
    ]
    assert len(busy) == 1, busy
    os.kill(busy[0].pid, signal.SIGKILL)
    smtp_server.handler.release.set()

    def final():
        document = status(job["status_url"])
        return document if document["status"] in ("sent", "partially_failed", "failed") else None

    document = wait_for(final, timeout=90, interval=0.5)
    assert document, status(job["status_url"])
    assert (document["sent"], document["failed"]) == (24, 3)
    # A replacement child took the killed one's place, and the files of all three count.
    assert busy[0].pid not in {child.pid for child in worker.tree()}
    files = os.listdir(tmp_path / "metrics")
    assert any(name.endswith(f"_{busy[0].pid}.db") for name in files), files

    for samples in (
        scrape(web.url + "/metrics"),
        scrape(f"http://127.0.0.1:{worker_port}/metrics"),
    ):
        assert value(samples, "emailsvc_messages_sent_total") == 24
        assert value(samples, "emailsvc_messages_failed_total", code_class="5xx") == 3
        assert value(samples, "emailsvc_jobs_accepted_total", client="anonymous") == 1
        assert value(samples, "emailsvc_recipients_accepted_total", client="anonymous") == 27
        assert value(samples, "emailsvc_smtp_send_duration_seconds_count") >= 24
        # Seven chunks, one of them delivered twice at least (the killed child's).
        assert value(samples, "emailsvc_chunk_duration_seconds_count") >= 7
    web_samples = scrape(web.url + "/metrics")
    assert value(web_samples, "emailsvc_jobs", status="partially_failed") == 1
    assert value(web_samples, "emailsvc_queue_depth", queue=settings["emailsvc.queue"]) == 0
    assert value(web_samples, "emailsvc_retries_scheduled") == 0
    assert value(web_samples, "emailsvc_redis_up") == 1
    post_route = value(
        web_samples,
        "emailsvc_http_requests_total",
        route="send_email",
        method="POST",
        status="202",
    )
    assert post_route == 1
