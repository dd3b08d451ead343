"""Jobs: their records in Redis, their dispatch into chunks, and the delivery of a chunk.

``config.include("emailsvc.jobs")`` adds the heartbeat checks of Redis (the job store, and
the broker unless ``emailsvc.broker_url`` names another), of that other broker, and of the
workers that consume the queue.
"""

from ..checks import CheckFailed


def check_redis(assembly, timeout):
    """Redis answers PING (the job store, and the broker when it is the same server)."""
    if not assembly.redis.ping():
        raise CheckFailed("PING was not answered")


def check_broker(assembly, timeout):
    """The broker of ``emailsvc.broker_url`` accepts a connection."""
    with assembly.celery.connection_for_write() as connection:
        connection.ensure_connection(max_retries=0, timeout=timeout)


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
    """Register the checks of the job store, of a broker of its own, and of the workers."""
    config.add_heartbeat_check("redis", check_redis)
    if config.registry.emailsvc.settings["emailsvc.broker_url"]:
        config.add_heartbeat_check("broker", check_broker)
    config.add_heartbeat_check("workers", check_workers)
