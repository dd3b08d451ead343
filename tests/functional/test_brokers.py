"""The other brokers and job stores, end to end: RabbitMQ as the broker, Redis through Sentinel.

Each test runs the app, a real prefork worker and aiosmtpd against real servers: the test
run's RabbitMQ virtual host, or a Redis primary, replica and sentinel of the test's own.
"""

import collections
import json

from tests.harness import app_service, wait_for

FINAL = {"sent", "partially_failed", "failed", "cancelled"}


def deliver(app, smtp_server, count):
    """POST a job of ``count`` recipients, wait until it is final; return (job, document)."""
    addresses = [f"user{i}@example.org" for i in range(count)]
    body = {"recipients": addresses, "subject": "Broker", "content": "Hello"}
    job = app.post("/email", json.dumps(body), content_type="application/json", status=202).json

    def final():
        doc = app.get(f"/email/{job['id']}").json
        return doc if doc["status"] in FINAL else None

    doc = wait_for(final, 120, interval=0.2)
    assert doc, f"the job did not finish: {app.get('/email/' + job['id']).json}"
    received = collections.Counter(
        address for _, recipients, _ in smtp_server.messages for address in recipients
    )
    assert received == {address: 1 for address in addresses}
    return job, doc


def test_a_job_goes_through_a_rabbitmq_quorum_queue_with_its_records_in_redis(
    settings, rabbitmq, smtp_server, start_worker, redis_client
):
    settings["emailsvc.broker_url"] = rabbitmq.url
    with app_service(settings) as app:
        start_worker(concurrency=2)
        checks = app.get("/__heartbeat__", status=200).json["checks"]
        assert checks == {"redis": "ok", "broker": "ok", "mail": "ok", "workers": "ok"}
        job, doc = deliver(app, smtp_server, 120)
    assert (doc["status"], doc["sent"], doc["failed"]) == ("sent", 120, 0)
    # The queue is RabbitMQ's, replicated (quorum), and empty; the records are in Redis.
    queue = settings["emailsvc.queue"]
    # (rabbitmqctl's counts are refreshed every few seconds.)
    assert wait_for(lambda: rabbitmq.queues()[queue] == ("quorum", 0), 30, interval=1)
    prefix = settings["emailsvc.redis_prefix"]
    assert redis_client.hget(f"{prefix}job:{job['id']}", "sent") == "120"
    # No broker key was written to Redis: the queue lives in RabbitMQ only.
    assert not redis_client.exists(prefix + queue)


def test_a_job_goes_through_redis_found_by_sentinel_for_its_records_and_its_queue(
    settings, sentinel_group, smtp_server, start_worker
):
    settings["emailsvc.redis_url"] = sentinel_group.url
    with app_service(settings) as app:
        start_worker(concurrency=2)
        assert app.get("/__heartbeat__", status=200).json["status"] == "ok"
        job, doc = deliver(app, smtp_server, 120)
    assert (doc["status"], doc["sent"], doc["failed"]) == ("sent", 120, 0)
    # Written on the primary, and copied to the replica that would take over.
    key = f"{settings['emailsvc.redis_prefix']}job:{job['id']}"
    for role in ("primary", "replica"):
        client = sentinel_group.client(role)
        assert wait_for(lambda client=client: client.hget(key, "sent") == "120", 10), role
        client.close()


def test_the_broker_is_checked_on_its_own_when_it_is_not_the_job_store(settings):
    # Nothing listens on port 1: the broker check fails, naming no address.
    settings["emailsvc.broker_url"] = "amqp://guest:guest@127.0.0.1:1//"
    settings["emailsvc.broker_timeout_seconds"] = "1"
    settings["emailsvc.heartbeat.worker_reply_seconds"] = "0.2"
    with app_service(settings) as app:
        response = app.get("/__heartbeat__", status=503).json
    assert response["checks"]["broker"] == "error"
    assert response["checks"]["redis"] == "ok"
