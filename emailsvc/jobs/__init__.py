"""Jobs: their records in Redis, their dispatch into chunks, and the delivery of a chunk.

``config.include("emailsvc.jobs")`` adds the heartbeat checks of Redis (the job store and
the broker) and of the workers that consume the queue.
"""

from ..checks import CheckFailed


def check_redis(assembly, timeout):
    """Redis answers PING (the job store and the broker are the same server)."""
    if not assembly.redis.ping():
        raise CheckFailed("PING was not answered")


def check_workers(assembly, timeout):
    """At least one Celery worker answers and consumes this service's queue."""
    settings = assembly.settings
    reply_wait = min(settings["emailsvc.heartbeat.worker_reply_seconds"], timeout)
    # One reply is enough (every worker of this service consumes its queue): stop at the
    # first instead of waiting the whole reply time.
    inspector = assembly.celery.control.inspect(timeout=reply_wait, limit=1)
    replies = inspector.active_queues() or {}
    queue = settings["emailsvc.queue"]
    alive = [
        name
        for name, queues in replies.items()
        if any(q.get("name") == queue for q in queues or ())
    ]
    if not alive:
        raise CheckFailed(f"no worker answered within {reply_wait:g} s")


def includeme(config):
    """Register the checks of the job store and of the workers."""
    config.add_heartbeat_check("redis", check_redis)
    config.add_heartbeat_check("workers", check_workers)
