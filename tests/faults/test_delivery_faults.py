"""Delivery under faults: every accepted recipient ends sent or failed, duplicates bounded.

Each test runs real prefork workers against the test's own Redis (AOF on) and the
scriptable relay, injects one fault, and asserts the exact set delivered per recipient,
the final status document and the bound on duplicates.
"""

import collections
import signal
import time

import psutil
import redis
import webtest

from emailsvc import main

from ..harness import wait_for
from .conftest import assert_no_address, wait_final

WORKER_PROCESSES = 2  # prefork children per worker


def recipients(n, tag="r"):
    return [f"{tag}{i:05d}@example.org" for i in range(n)]


def post(app, addresses, **fields):
    body = {"recipients": addresses, "subject": "Fault test", "content": "Body", **fields}
    return app.post_json("/email", body, status=202).json


def status_of(app, job_id):
    """The status document, or None while the service cannot answer (Redis down)."""
    response = app.get(f"/email/{job_id}", expect_errors=True)
    return response.json if response.status_int == 200 else None


def poll_final(app, job_id, timeout):
    def status():
        return status_of(app, job_id) or {"status": "unknown"}

    return wait_final(status, timeout)


def copies(relay):
    return collections.Counter(relay.delivered())


def test_relay_down_longer_than_a_retry_budget_loses_nothing(app, relay, start_worker):
    worker = start_worker(concurrency=WORKER_PROCESSES)
    relay.down()
    addresses = recipients(500)
    job = post(app, addresses)
    # While the relay is down the job says it is retrying, why, and when it tries again.
    doc = wait_for(
        lambda: (d := status_of(app, job["id"])) and d["status"] == "retrying" and d, 20
    )
    assert doc and doc["last_error"]["message"] and doc["next_attempt_at"].endswith("Z")
    time.sleep(8)  # far past what three retries used to last (about 3 s with these timings)
    relay.up()
    back = time.monotonic()
    doc = poll_final(app, job["id"], 90)
    print(f"\nrelay back: job final {time.monotonic() - back:.1f} s later")
    assert (doc["status"], doc["sent"], doc["failed"], doc["errors"]) == ("sent", 500, 0, [])
    assert copies(relay) == {address: 1 for address in addresses}
    assert_no_address(worker.output())


def test_a_relay_answering_421_forever_fails_every_recipient_at_the_lifetime(
    relay, settings, start_worker
):
    settings["emailsvc.delivery_lifetime_seconds"] = "5"
    app = webtest.TestApp(main({}, **settings))
    worker = start_worker(concurrency=WORKER_PROCESSES)
    relay.mode = "421"
    addresses = recipients(10)
    job = post(app, addresses)
    doc = poll_final(app, job["id"], 60)
    assert (doc["status"], doc["sent"], doc["failed"], doc["pending"]) == ("failed", 0, 10, 0)
    assert sorted(e["recipient"] for e in doc["errors"]) == addresses
    assert {(e["code"], e["message"]) for e in doc["errors"]} == {
        (421, "delivery lifetime ended; last error: 4.3.2 Service not available, try later")
    }
    assert relay.delivered() == []
    assert_no_address(worker.output())


def test_a_relay_down_for_longer_than_the_lifetime_fails_with_the_last_error(
    relay, settings, start_worker
):
    settings["emailsvc.delivery_lifetime_seconds"] = "4"
    app = webtest.TestApp(main({}, **settings))
    start_worker(concurrency=WORKER_PROCESSES)
    relay.down()
    job = post(app, recipients(120))
    doc = poll_final(app, job["id"], 60)
    assert (doc["status"], doc["failed"], doc["pending"]) == ("failed", 120, 0)
    messages = {e["message"] for e in doc["errors"]}
    assert len(messages) == 1 and messages.pop().startswith(
        "delivery lifetime ended; last error: cannot reach 127.0.0.1"
    )


def test_redis_killed_mid_job_and_restarted_on_its_aof_loses_nobody(
    app, relay, aof_redis, start_worker
):
    workers = [start_worker(name=n, concurrency=WORKER_PROCESSES) for n in ("a", "b")]
    relay.delay = 0.002
    addresses = recipients(2000)
    job = post(app, addresses)
    assert wait_for(lambda: len(relay.delivered()) >= 300, 60)
    aof_redis.kill()
    time.sleep(1.5)
    aof_redis.start()
    restarted = time.monotonic()
    doc = poll_final(app, job["id"], 120)
    print(f"\nredis restarted: job final {time.monotonic() - restarted:.1f} s later")
    assert (doc["status"], doc["sent"], doc["failed"], doc["pending"]) == ("sent", 2000, 0, 0)
    received = copies(relay)
    assert set(received) == set(addresses)
    # At most the messages in flight when Redis died: one per worker process.
    duplicates = sum(n - 1 for n in received.values())
    print(f"duplicates: {sorted(a for a, n in received.items() if n > 1)}")
    assert duplicates <= len(workers) * WORKER_PROCESSES
    assert_no_address(*(w.output() for w in workers))


def test_a_killed_worker_main_process_has_its_chunks_resumed_by_another(app, relay, start_worker):
    doomed = start_worker(name="doomed", concurrency=WORKER_PROCESSES)
    relay.delay = 0.01
    addresses = recipients(600)
    job = post(app, addresses)
    assert wait_for(lambda: len(relay.delivered()) >= 50, 60)
    children = psutil.Process(doomed.process.pid).children(recursive=True)
    doomed.process.send_signal(signal.SIGKILL)
    for child in children:
        # The pool children go with their parent (as they do when a container is killed).
        child.kill()
    killed_at = time.monotonic()
    survivor = start_worker(name="survivor", concurrency=WORKER_PROCESSES)
    doc = poll_final(app, job["id"], 120)
    print(f"\nworker killed: job final {time.monotonic() - killed_at:.1f} s later")
    assert (doc["status"], doc["sent"]) == ("sent", 600)
    # Resumed by the watchdog once the leases lapsed: seconds, not the visibility timeout.
    assert time.monotonic() - killed_at < 60
    received = copies(relay)
    assert set(received) == set(addresses)
    assert sum(n - 1 for n in received.values()) <= WORKER_PROCESSES
    assert_no_address(survivor.output())


def test_lost_broker_messages_are_enqueued_again_by_the_watchdog(
    app, relay, aof_redis, settings, start_worker
):
    addresses = recipients(230)
    job = post(app, addresses)
    # The job's start message is lost with the queue (a broker without persistence).
    client = redis.Redis.from_url(aof_redis.url)
    assert client.delete(settings["emailsvc.redis_prefix"] + settings["emailsvc.queue"]) == 1
    client.close()
    start_worker(concurrency=WORKER_PROCESSES)
    doc = poll_final(app, job["id"], 60)
    assert (doc["status"], doc["sent"]) == ("sent", 230)
    assert copies(relay) == {address: 1 for address in addresses}


def test_a_stall_after_the_final_dot_sends_one_copy_again_with_the_same_message_id(
    app, relay, start_worker
):
    start_worker(concurrency=WORKER_PROCESSES)
    relay.stall_dot, relay.stall_seconds = 1, 6  # past the client's 5 s timeout
    addresses = recipients(3)
    job = post(app, addresses)
    doc = poll_final(app, job["id"], 60)
    assert (doc["status"], doc["sent"]) == ("sent", 3)
    received = copies(relay)
    assert set(received) == set(addresses) and sum(received.values()) == 4
    [twice] = [address for address, n in received.items() if n == 2]
    first, second = relay.message_ids(twice)
    assert first == second == f"<{job['id']}.{addresses.index(twice)}@example.com>"
