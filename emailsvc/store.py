"""The Redis connection shared by job records and the Celery broker."""

import redis

from .settings import as_float


def connect(settings):
    """Return a Redis client for ``emailsvc.redis_url`` with bounded timeouts."""
    timeout = as_float(settings, "emailsvc.redis_timeout_seconds")
    # Without timeouts a Redis that stopped answering would hang the request thread
    # instead of giving the client a 503.
    return redis.Redis.from_url(
        settings["emailsvc.redis_url"],
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
        health_check_interval=30,
    )


def broker_url(redis_url):
    """Translate a redis-py URL into the form kombu expects (unix sockets differ)."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url[len("unix://") :]
    return redis_url
