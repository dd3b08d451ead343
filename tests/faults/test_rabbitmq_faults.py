"""RabbitMQ as the broker under faults: a killed worker's chunks come back at once.

The queue is a quorum queue in the test run's virtual host; the job records stay in the
test's own Redis (AOF on). RabbitMQ hands a consumer's unacknowledged messages to another
as soon as the consumer's connection closes, so no watchdog is needed for a killed worker:
its chunks wait only for their leases in Redis to lapse.
"""

import collections
import signal
import time

import psutil

from ..harness import app_service, job_status, wait_for
from .conftest import assert_no_address, wait_final

WORKER_PROCESSES = 2  # prefork children per worker


def test_a_killed_worker_with_rabbitmq_has_its_chunks_resumed_by_another_within_10_s(
    relay, settings, rabbitmq, start_worker
):
    settings["emailsvc.broker_url"] = rabbitmq.url
    # The watchdog looks only after a minute without progress: what resumes the chunks
    # here is RabbitMQ's redelivery, not the watchdog.
    settings["emailsvc.watchdog.stall_seconds"] = "60"
    # Two chunks, one per process of the doomed worker, each lasting about 25 s: long
    # enough for the survivor to start on a busy machine before they end.
    settings["emailsvc.chunk_size"] = "100"
    relay.delay = 0.25
    addresses = [f"r{i:05d}@example.org" for i in range(200)]
    with app_service(settings) as app:
        doomed = start_worker(name="doomed", concurrency=WORKER_PROCESSES)
        body = {"recipients": addresses, "subject": "Fault test", "content": "Body"}
        job = app.post_json("/email", body, status=202).json
        assert wait_for(lambda: len(relay.delivered()) >= 4, 60)
        # The survivor is idle when the doomed worker dies: it has nothing of this job.
        survivor = start_worker(name="survivor", concurrency=WORKER_PROCESSES)
        before = len(relay.delivered())
        assert before < len(addresses) - 40, "the doomed worker finished before the kill"
        children = psutil.Process(doomed.process.pid).children(recursive=True)
        doomed.process.send_signal(signal.SIGKILL)
        for child in children:
            # The pool children go with their parent (as they do when a container is killed).
            child.kill()
        killed_at = time.monotonic()
        doc = wait_final(lambda: job_status(app, job["id"]), 120)
    assert (doc["status"], doc["sent"], doc["failed"], doc["pending"]) == ("sent", 200, 0, 0)
    received = collections.Counter(relay.delivered())
    assert set(received) == set(addresses)
    assert sum(n - 1 for n in received.values()) <= WORKER_PROCESSES
    resumed = min(at for _, at in relay.arrivals() if at > killed_at) - killed_at
    print(f"chunks resumed {resumed:.1f} s after the worker was killed")
    # At most the chunks' lease (3 s here) and a second: not the visibility timeout.
    assert resumed < 10
    assert_no_address(survivor.output())
