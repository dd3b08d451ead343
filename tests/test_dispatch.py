"""Recording and enqueuing a job, all or nothing."""

from types import SimpleNamespace

import pytest
import redis
from kombu.exceptions import OperationalError

from emailsvc.jobs.dispatch import chunks, submit
from emailsvc.jobs.records import JobStore
from emailsvc.jobs.tasks import DELIVER_CHUNK

BODY = {"subject": "S", "content": "C", "template": "default"}


def test_chunks_cover_every_recipient_once_in_order():
    parts = list(chunks(list(range(250)), 100))
    assert [(offset, len(part)) for offset, part in parts] == [(0, 100), (100, 100), (200, 50)]


class BrokerFailingAfter:
    """A task whose broker accepts ``n`` publishes, then fails as kombu does when Redis is gone."""

    def __init__(self, n):
        self.n = n
        self.published = []

    def apply_async(self, args, argsrepr):
        if len(self.published) >= self.n:
            raise OperationalError("Error 111 connecting to broker")
        self.published.append(args)


def test_a_job_whose_chunks_cannot_all_be_enqueued_leaves_no_record(redis_url, redis_prefix):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = JobStore(client, redis_prefix, 60)
    task = BrokerFailingAfter(1)
    assembly = SimpleNamespace(
        jobs=store,
        settings={"emailsvc.chunk_size": 2},
        celery=SimpleNamespace(tasks={DELIVER_CHUNK: task}),
    )
    body = dict(BODY, recipients=[{"email": f"r{i}@example.org"} for i in range(5)])
    with pytest.raises(OperationalError):
        submit(assembly, body, client="acme")
    job_id = task.published[0][0]
    assert store.status(job_id, "acme") is None
    assert list(client.scan_iter(match=redis_prefix + "*")) == []
