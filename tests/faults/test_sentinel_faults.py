"""Redis through Sentinel under faults: the primary dies mid-job, its replica takes over.

A real primary, replica and sentinel run on loopback ports (RedisSentinelGroup); the job
store and the broker both find the primary through the sentinel. Replication is
asynchronous: what the primary acknowledged in the moment before it died may not have
reached the replica, so the outcomes of the messages sent in that moment can be lost and
those messages sent again. The test asserts exactly that window: every recipient is
delivered, and every recipient delivered twice had its first copy sent in the last moment
before the primary died (two seconds allowed for a busy machine; on loopback the replica
trails by milliseconds).
"""

import collections
import time

from ..harness import app_service, job_status, wait_for
from .conftest import assert_no_address, wait_final

WORKER_PROCESSES = 2  # prefork children per worker
WINDOW = 2.0  # seconds before the primary died in which a lost outcome may have been written


def test_the_redis_primary_killed_mid_job_fails_over_to_its_replica_and_nobody_is_lost(
    relay, settings, sentinel_group, start_worker
):
    settings["emailsvc.redis_url"] = sentinel_group.url
    relay.delay = 0.002
    addresses = [f"r{i:05d}@example.org" for i in range(2000)]
    with app_service(settings) as app:
        workers = [start_worker(name=n, concurrency=WORKER_PROCESSES) for n in ("a", "b")]
        body = {"recipients": addresses, "subject": "Fault test", "content": "Body"}
        job = app.post_json("/email", body, status=202).json
        assert wait_for(lambda: len(relay.delivered()) >= 300, 60)
        sentinel_group.kill("primary")
        killed_at = time.monotonic()
        replica = sentinel_group.ports["replica"]
        assert wait_for(lambda: sentinel_group.primary_port() == replica, 30, interval=0.05)
        failover = time.monotonic() - killed_at
        doc = wait_final(lambda: job_status(app, job["id"]), 120)
        finished = time.monotonic() - killed_at
    assert (doc["status"], doc["sent"], doc["failed"], doc["pending"]) == ("sent", 2000, 0, 0)
    received = collections.Counter(relay.delivered())
    assert set(received) == set(addresses)
    first_copy = {}
    for address, at in relay.arrivals():
        first_copy.setdefault(address, at)
    twice = [address for address, n in received.items() if n > 1]
    early = [address for address in twice if first_copy[address] < killed_at - WINDOW]
    assert not early, f"sent twice, first copy sent long before the primary died: {early}"
    print(
        f"failover {failover:.1f} s, job final {finished:.1f} s after the kill, "
        f"{len(twice)} recipients sent twice"
    )
    assert_no_address(*(worker.output() for worker in workers))
