"""Request validators used by the Cornice services."""

import json

from cornice.validators import colander_validator
from pyramid.httpexceptions import HTTPRequestEntityTooLarge


def parsed_json_body(request):
    """Cornice deserializer: the JSON body, never an exception for malformed input."""
    try:
        body = json.loads(request.body.decode("utf-8")) if request.body else {}
    except (ValueError, RecursionError) as exc:
        # RecursionError: deeply nested arrays are valid JSON that Python cannot parse.
        request.errors.add("body", "", f"Invalid JSON: {str(exc)[:200]}")
        return {}
    if not isinstance(body, dict):
        request.errors.add("body", "", "Should be a JSON object")
        return {}
    return {"body": body, "path": request.matchdict or {}}


def json_body_validator(request, schema=None, **kwargs):
    """Check the body size, parse the JSON and validate it with the service's bound schema."""
    limit = request.registry.emailsvc.max_body_bytes
    length = request.content_length
    if length is None:
        length = len(request.body or b"")
    if length > limit:
        request.errors.add("body", "", f"Request body is larger than {limit} bytes")
        request.errors.status = HTTPRequestEntityTooLarge.code
        return
    cstruct = parsed_json_body(request)
    if request.errors:
        return
    bound = request.registry.emailsvc.bound_schema(schema)
    colander_validator(request, schema=bound, deserializer=lambda _: cstruct)
