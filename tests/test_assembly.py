"""The composition root: one function builds every part, and assemblies never share state."""

import pytest

from emailsvc.assembly import assemble
from emailsvc.jobs.dispatch import submit
from emailsvc.jobs.tasks import DELIVER_CHUNK
from emailsvc.settings import load

from .harness import queue_size

BODY = {
    "recipients": [{"email": f"r{i}@example.org", "name": "", "vars": {}} for i in range(5)],
    "subject": "s",
    "content": "c",
    "template": "default",
}


@pytest.fixture
def assemblies(redis_url, redis_prefix):
    """Two assemblies in this process, on one Redis, each with a key prefix of its own."""
    built = []

    def build(name):
        prefix = f"{redis_prefix}{name}:"
        settings = load(
            {
                "emailsvc.redis_url": redis_url,
                "emailsvc.redis_prefix": prefix,
                "emailsvc.chunk_size": "2",
            },
            environ={},
        )
        built.append(assemble(settings))
        return built[-1]

    yield build
    for assembly in built:
        assembly.close()


def test_two_assemblies_with_different_prefixes_see_neither_queues_nor_jobs(assemblies):
    first, second = assemblies("first"), assemblies("second")
    assert first.celery is not second.celery
    job_id = submit(first, BODY, client="shop")
    assert queue_size(first) == 1  # the job's start; a worker enqueues its chunks
    assert queue_size(second) == 0
    assert first.jobs.status(job_id, "shop")["total"] == 5
    assert second.jobs.status(job_id, "shop") is None
    other = submit(second, BODY, client="shop")
    assert (queue_size(first), queue_size(second)) == (1, 1)
    assert first.jobs.status(other, "shop") is None


def test_each_celery_app_holds_the_task_and_its_own_assembly(assemblies):
    first, second = assemblies("first"), assemblies("second")
    assert first.celery.assembly is first and second.celery.assembly is second
    assert first.celery.tasks[DELIVER_CHUNK] is not second.celery.tasks[DELIVER_CHUNK]
    assert first.celery.conf.broker_transport_options["global_keyprefix"].endswith("first:")


def test_a_celery_app_is_configured_once(assemblies):
    first = assemblies("first")
    with pytest.raises(RuntimeError, match="configured already"):
        assemble(first.settings, celery_app=first.celery)
