"""``Idempotency-Key`` on ``POST /email`` (the IETF httpapi draft of that name).

A client that could not read an answer (its own timeout, a dropped connection) sends the
same request again with the same key: the first request's 202 comes back, with
``Idempotent-Replayed: true``, and no second job is made. The fingerprint that tells "the
same request" is the SHA-256 of the validated body's canonical JSON (keys sorted, no
spaces, defaults filled in), so that key order and whitespace do not matter.
"""

import hashlib
import json
import logging

from pyramid.httpexceptions import HTTPAccepted, HTTPConflict, HTTPUnprocessableEntity
from redis.exceptions import RedisError

from ..jobs.idempotency import DONE
from .errors import error_response

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY_CHARS = 255
# A request with the key is still running: it takes milliseconds, so the retry can be soon.
PENDING_RETRY_AFTER = "1"


class InvalidKey(ValueError):
    """An ``Idempotency-Key`` field value that is no key; the message says why."""


def parse_key(value):
    """The key in an ``Idempotency-Key`` field value, or raise ``InvalidKey``.

    The draft's value is a Structured Field string (RFC 8941: ``"..."``, printable ASCII,
    ``\\"`` and ``\\\\`` its only escapes); a bare value of visible ASCII is taken as is.
    """
    value = value.strip(" \t")
    if value.startswith('"'):
        key = _sf_string(value)
    elif any(not 0x21 <= ord(char) <= 0x7E or char in '"\\' for char in value):
        raise InvalidKey("must be a quoted string, or visible ASCII without quotes")
    else:
        key = value
    if not key:
        raise InvalidKey("must not be empty")
    if len(key) > MAX_KEY_CHARS:
        raise InvalidKey(f"must be at most {MAX_KEY_CHARS} characters")
    return key


def _sf_string(value):
    chars, escaped = [], False
    for position, char in enumerate(value[1:], start=1):
        if not 0x20 <= ord(char) <= 0x7E:
            raise InvalidKey("must hold printable ASCII only")
        if escaped:
            if char not in '"\\':
                raise InvalidKey('may escape only " and \\')
            chars.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            if position != len(value) - 1:
                raise InvalidKey("must end with its closing quote")
            return "".join(chars)
        else:
            chars.append(char)
    raise InvalidKey("misses its closing quote")


def fingerprint(body):
    """The SHA-256 hex digest of a validated body's canonical JSON."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def idempotent_request(request, **kwargs):
    """Cornice validator, before the limits: claim the request's key, or answer for it.

    A key already answered replays that 202 (not counted against the limits: it sends
    nothing); used with another body, 422; still being processed, 409 with
    ``Retry-After``. The claim is released when the request ends without its job
    recorded, so that a request refused (4xx, 503) leaves the key free.
    """
    request.idempotency_claim = None
    if request.errors or HEADER not in request.headers:
        return
    try:
        key = parse_key(request.headers[HEADER])
    except InvalidKey as exc:
        request.errors.add("header", HEADER, f"{HEADER} {exc}")
        return
    store = request.registry.emailsvc.idempotency
    digest = fingerprint(request.validated["body"])
    claim, held = store.claim(request.identity, key, digest)
    if claim is not None:
        request.idempotency_claim = claim
        request.add_finished_callback(lambda _: _release(store, request.idempotency_claim))
        return
    if held["fingerprint"] != digest:
        description = f"This {HEADER} was used with another request body"
        raise error_response(HTTPUnprocessableEntity, "header", HEADER, description)
    if held["state"] != DONE:
        description = f"A request with this {HEADER} is still being processed"
        raise error_response(
            HTTPConflict, "header", HEADER, description, **{"Retry-After": PENDING_RETRY_AFTER}
        )
    raise _replay(held)


def _replay(held):
    response = HTTPAccepted(
        headers={"Location": held["body"]["status_url"], REPLAYED: "true"},
    )
    response.content_type = "application/json"
    response.json_body = held["body"]
    return response


def kept(request):
    """The view recorded the job, and with it its key's answer: the claim is spent."""
    request.idempotency_claim = None


def _release(store, claim):
    if claim is None:
        return
    # Deletes only the claim itself: after a job recorded although its request failed
    # (Redis answered too late), the transaction's answer replaced the claim and stays.
    try:
        store.release(claim)
    except RedisError as exc:
        # The claim expires by itself (IdempotencyStore.claim_seconds); until then 409.
        log.warning("an idempotency claim was not released (%s)", type(exc).__name__)
