"""Whether the Redis that holds the jobs keeps every write it acknowledged.

A 202 is kept only if the job's transaction survives a crash of Redis: that takes the
append-only file with ``appendfsync always`` (docs/RELIABILITY.md, *Deploying*). Web and
worker processes say so once at start when their Redis is configured otherwise.
"""

import logging

from redis.exceptions import RedisError

log = logging.getLogger(__name__)


def persistence_problem(client):
    """How ``client``'s Redis may lose acknowledged writes; None when it keeps them.

    None as well when its configuration cannot be read: managed Redis services often
    refuse ``CONFIG``, and they document their own persistence.
    """
    try:
        config = client.config_get("append*")
    except RedisError:
        return None
    if config.get("appendonly") != "yes":
        return "appendonly is off: a restart of Redis loses every accepted job"
    fsync = config.get("appendfsync")
    if fsync != "always":
        return (
            f"appendfsync is {fsync}: a killed or crashed Redis can lose the last seconds "
            "of writes it acknowledged, jobs answered 202 among them"
        )
    return None


def warn_if_forgetful(client):
    """Log a warning when ``client``'s Redis may lose what it acknowledged."""
    problem = persistence_problem(client)
    if problem:
        log.warning(
            "Redis %s; set appendonly yes and appendfsync always (docs/RELIABILITY.md)", problem
        )
    return problem
