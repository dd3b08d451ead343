"""Limits per client: accepted requests per minute and recipients per hour, counted in Redis.

Counters are fixed windows under the configured prefix (``P limit:<client>:requests:<n>``
and ``P limit:<client>:recipients:<n>``), shared by every web process. One Lua script
checks both limits and counts the request only when both pass, so a refused request
consumes nothing.

Answers that went through the limiter carry ``RateLimit-Limit``, ``RateLimit-Remaining`` and
``RateLimit-Reset`` (the IETF httpapi draft "RateLimit header fields for HTTP"), about the
requests-per-minute limit, or about the recipients-per-hour limit when that one refused the
request.
"""

import math
import time
from typing import NamedTuple

from pyramid.httpexceptions import HTTPTooManyRequests

from .errors import error_response
from .schemas import envelope_count

REQUESTS_WINDOW_SECONDS = 60
RECIPIENTS_WINDOW_SECONDS = 3600

# Returns {verdict, requests counted, recipients counted}: the verdict is 0 when counted, 1
# when the request limit is reached, 2 for the recipient limit; the counts are the window's
# after this request. A limit of 0 means none. The counters expire with their window (plus a
# margin).
_CHECK_AND_COUNT = """
local max_requests, max_recipients = tonumber(ARGV[1]), tonumber(ARGV[2])
local recipients = tonumber(ARGV[3])
local requests_now = tonumber(redis.call('GET', KEYS[1]) or '0')
local recipients_now = tonumber(redis.call('GET', KEYS[2]) or '0')
if max_requests > 0 and requests_now + 1 > max_requests then
  return {1, requests_now, recipients_now}
end
if max_recipients > 0 and recipients_now + recipients > max_recipients then
  return {2, requests_now, recipients_now}
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('INCRBY', KEYS[2], recipients)
redis.call('EXPIRE', KEYS[2], ARGV[5])
return {0, requests_now + 1, recipients_now + recipients}
"""


class Quota(NamedTuple):
    """One limit's state for a client: its size, what is left of it, seconds to its reset."""

    limit: int
    remaining: int
    reset: int

    def headers(self):
        """The ``RateLimit-*`` header fields that describe this quota."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


class LimitExceeded(Exception):
    """A client is over one of its limits; ``retry_after`` is in whole seconds."""

    def __init__(self, name, limit, retry_after, quota=None):
        super().__init__(f"{name} limit of {limit} reached")
        self.name = name
        self.limit = limit
        self.retry_after = retry_after
        #: The refusing limit's ``Quota``.
        self.quota = quota or Quota(limit, 0, retry_after)


class RateLimiter:
    """Counts each client's accepted requests and recipients in Redis."""

    def __init__(self, redis, prefix, limits_for, clock=time.time):
        self.redis = redis
        self.prefix = prefix
        #: ``limits_for(client)`` -> ``{name: limit}`` (``Settings.limits_for``).
        self.limits_for = limits_for
        self.clock = clock
        self._script = redis.register_script(_CHECK_AND_COUNT)

    def check_and_count(self, client, recipients):
        """Count one request of ``recipients`` for ``client``, or raise ``LimitExceeded``.

        Nothing is counted when a limit would be passed. Returns the requests-per-minute
        ``Quota`` after this request, or None when the client has no such limit.
        """
        limits = self.limits_for(client)
        now = self.clock()
        minute = int(now // REQUESTS_WINDOW_SECONDS)
        hour = int(now // RECIPIENTS_WINDOW_SECONDS)
        base = f"{self.prefix}limit:{client}:"
        verdict, requests, recipients_now = self._script(
            keys=[f"{base}requests:{minute}", f"{base}recipients:{hour}"],
            args=[
                limits["requests_per_minute"],
                limits["recipients_per_hour"],
                recipients,
                REQUESTS_WINDOW_SECONDS + 5,
                RECIPIENTS_WINDOW_SECONDS + 5,
            ],
        )
        minute_reset = _whole((minute + 1) * REQUESTS_WINDOW_SECONDS - now)
        if verdict == 1:
            limit = limits["requests_per_minute"]
            quota = Quota(limit, max(0, limit - requests), minute_reset)
            raise LimitExceeded("requests_per_minute", limit, minute_reset, quota)
        if verdict == 2:
            limit = limits["recipients_per_hour"]
            retry = _whole((hour + 1) * RECIPIENTS_WINDOW_SECONDS - now)
            quota = Quota(limit, max(0, limit - recipients_now), retry)
            raise LimitExceeded("recipients_per_hour", limit, retry, quota)
        if not limits["requests_per_minute"]:
            return None
        limit = limits["requests_per_minute"]
        return Quota(limit, max(0, limit - requests), minute_reset)


def _whole(seconds):
    return max(1, math.ceil(seconds))


def within_limits(request, **kwargs):
    """Cornice validator, last in line: count a valid job against its client's limits.

    Over a limit the request gets 429 with ``Retry-After`` and nothing is recorded.
    """
    if request.errors:
        return
    # A recipient's cc and bcc are sent to as well: they count.
    _count(request, envelope_count(request.validated["body"]["recipients"]))


def within_request_limit(request, **kwargs):
    """Cornice validator for requests that send nothing: they count as requests only."""
    if request.errors:
        return
    _count(request, 0)


def _count(request, recipients):
    try:
        quota = request.registry.emailsvc.limiter.check_and_count(request.identity, recipients)
    except LimitExceeded as exc:
        if exc.name == "recipients_per_hour" and recipients > exc.limit:
            description = (
                f"This job has {recipients} recipients; this client may send to at most "
                f"{exc.limit} per hour: split the job"
            )
        else:
            description = f"Limit reached: {exc.limit} {exc.name.replace('_', ' ')}"
        raise error_response(
            HTTPTooManyRequests,
            "header",
            "Authorization",
            description,
            **{"Retry-After": str(exc.retry_after)},
            **exc.quota.headers(),
        ) from None
    if quota is not None:
        # Every answer to a counted request says how much is left, errors after this included.
        request.add_response_callback(lambda _, response: response.headers.update(quota.headers()))
