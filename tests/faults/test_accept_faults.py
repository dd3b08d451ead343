"""Accepting under faults: a 202 is kept, and an error answer means nothing is ever sent."""

import collections
import http.client
import json
import random
import threading
import time

from ..harness import wait_for
from .conftest import assert_no_address

POSTS = 50
RECIPIENTS = 1000
SEED = 20261122


def post(port, body):
    """POST /email on the live web server; ``(status, document)``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(
            "POST", "/email", json.dumps(body), {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def get(port, path):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def get_ok(port):
    try:
        return get(port, "/__lbheartbeat__")[0] == 200
    except OSError:
        return False


def post_while_redis_dies(port, body, aof_redis, after, down_for):
    """POST ``body``; ``after`` seconds later SIGKILL Redis, and restart it ``down_for`` later.

    Returns the answer's (status, document), which must be 202 or 503, once the service
    answers again.
    """
    result = {}
    poster = threading.Thread(target=lambda: result.update(answer=post(port, body)))
    poster.start()
    time.sleep(after)
    aof_redis.kill()
    restarter = threading.Timer(down_for, aof_redis.start)
    restarter.start()
    poster.join(60)
    restarter.join()
    status, document = result["answer"]
    assert status in (202, 503), (status, document)
    wait_for(lambda: get_ok(port), 10)
    return status, document


def test_redis_killed_at_random_points_of_large_posts(
    aof_redis, relay, settings, start_web, start_worker
):
    # Tens of thousands of messages queue up here: no job may reach its lifetime meanwhile.
    settings["emailsvc.delivery_lifetime_seconds"] = "3600"
    rng = random.Random(SEED)
    web = start_web()
    worker = start_worker(concurrency=2)
    # How long one POST takes here, undisturbed: the kills are spread over 1.5 times that.
    warm_up = [f"warm-{i:04d}@example.org" for i in range(RECIPIENTS)]
    started = time.monotonic()
    status, document = post(web.port, {"recipients": warm_up, "subject": "s", "content": "c"})
    span = 1.5 * (time.monotonic() - started)
    answers = [(status, document, warm_up)]
    for n in range(POSTS):
        addresses = [f"p{n:02d}-{i:04d}@example.org" for i in range(RECIPIENTS)]
        body = {"recipients": addresses, "subject": f"Post {n}", "content": "Body"}
        # Anywhere from before the request is read to after the job is recorded.
        status, document = post_while_redis_dies(
            web.port, body, aof_redis, rng.uniform(0, span), rng.uniform(0, 2.5)
        )
        answers.append((status, document, addresses))

    accepted = [(doc["id"], addresses) for status, doc, addresses in answers if status == 202]
    refused = [addresses for status, _, addresses in answers if status == 503]
    print(f"\n{len(accepted)} accepted, {len(refused)} refused (seed {SEED})")

    def all_final():
        for job_id, _ in accepted:
            code, doc = get(web.port, f"/email/{job_id}")
            if code != 200 or doc["status"] not in ("sent", "partially_failed", "failed"):
                return False
        return True

    # Up to 50,000 messages: minutes on a loaded 2-core machine.
    assert wait_for(all_final, 900, interval=2)
    received = collections.Counter(relay.delivered())
    for job_id, addresses in accepted:
        code, doc = get(web.port, f"/email/{job_id}")
        assert (doc["status"], doc["sent"]) == ("sent", RECIPIENTS), doc
        assert all(received[address] >= 1 for address in addresses)
    # A refused job that had been written would be started by the watchdog after
    # emailsvc.watchdog.stall_seconds (2 s here): give it twice that to show it is not.
    time.sleep(4)
    received = collections.Counter(relay.delivered())
    for addresses in refused:
        assert not any(received[address] for address in addresses)
    # Duplicates only where Redis died between the relay's 250 and the outcome's record.
    assert sum(n - 1 for n in received.values()) <= (POSTS + 1) * 2
    assert_no_address(worker.output(), web.output())


def test_redis_killed_while_10000_recipient_posts_are_recorded(
    aof_redis, relay, settings, start_web, start_worker
):
    settings["emailsvc.delivery_lifetime_seconds"] = "3600"
    rng = random.Random(SEED + 1)
    web = start_web()
    # Two workers, as deployed: kombu's Redis transport can end a worker's main process
    # when Redis dies at the moment it restores unacknowledged messages (an AttributeError
    # in its connection's close); the other worker's watchdog resumes the dead one's work.
    start_worker("worker-a", concurrency=1)
    start_worker("worker-b", concurrency=1)
    # A body whose last address is invalid is validated whole, then refused: nothing is
    # recorded, and its time is where the job would be written.
    invalid = [f"v-{i:05d}@example.org" for i in range(9999)] + ["not an address"]
    started = time.monotonic()
    status, _ = post(web.port, {"recipients": invalid, "subject": "s", "content": "c"})
    assert status == 400
    validation = time.monotonic() - started
    answers = []
    for n in range(4):
        addresses = [f"big{n}-{i:05d}@example.org" for i in range(10_000)]
        body = {"recipients": addresses, "subject": f"Big {n}", "content": "Body"}
        # Before, during or after the job's transaction (writing 10,000 recipients).
        status, document = post_while_redis_dies(
            web.port,
            body,
            aof_redis,
            rng.uniform(0.5 * validation, 2.5 * validation),
            rng.uniform(0, 2.5),
        )
        answers.append((status, document, addresses))
    print(f"\nanswers: {[status for status, _, _ in answers]}")

    accepted = [(doc["id"], a) for status, doc, a in answers if status == 202]

    def all_final():
        documents = [get(web.port, f"/email/{job_id}")[1] for job_id, _ in accepted]
        unfinished[:] = [doc for doc in documents if doc["status"] != "sent"]
        return not unfinished

    unfinished = []
    # Up to 40,000 messages: minutes on a loaded 2-core machine.
    assert wait_for(all_final, 900, interval=2), unfinished
    time.sleep(4)  # twice the stall: a refused job that had been written would start by now
    received = collections.Counter(relay.delivered())
    for status, _, addresses in answers:
        if status == 202:
            assert all(received[address] >= 1 for address in addresses)
        else:
            assert not any(received[address] for address in addresses)
