"""Request validators used by the Cornice services."""

import json
import re

from cornice.validators import colander_validator
from pyramid.httpexceptions import HTTPRequestEntityTooLarge

# A JSON escape of a UTF-16 surrogate; paired ones are fine, a lone one is no text at all.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parsed_json_body(request):
    """Cornice deserializer: the JSON body, never an exception for malformed input."""
    try:
        text = request.body.decode("utf-8") if request.body else "{}"
        body = json.loads(text)
        if _SURROGATE_ESCAPE.search(text):
            # json.loads accepts "\ud800" alone; such a string cannot be encoded, stored
            # or sent, so it is refused here rather than failing later.
            json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        request.errors.add("body", "", "Invalid JSON: a string holds a lone UTF-16 surrogate")
        return {}
    except (ValueError, RecursionError) as exc:
        # RecursionError: deeply nested arrays are valid JSON that Python cannot parse.
        request.errors.add("body", "", f"Invalid JSON: {str(exc)[:200]}")
        return {}
    if not isinstance(body, dict):
        request.errors.add("body", "", "Should be a JSON object")
        return {}
    return {"body": body, "path": request.matchdict or {}}


def schema_bindings(assembly):
    """The values deferred schema validators read: limits and the template names."""
    settings = assembly.settings
    return {
        "max_recipients": settings["emailsvc.max_recipients"],
        "max_content_bytes": settings["emailsvc.max_content_bytes"],
        "templates": assembly.templates.names,
    }


def bound_schema(registry, schema_class):
    """``schema_class`` bound to this service's settings, built once rather than per request."""
    cache = registry.emailsvc_bound_schemas
    if schema_class not in cache:
        cache[schema_class] = schema_class().bind(**schema_bindings(registry.emailsvc))
    return cache[schema_class]


def json_body_validator(request, schema=None, **kwargs):
    """Check the body size, parse the JSON and validate it with the service's bound schema."""
    limit = request.registry.emailsvc.settings["emailsvc.max_body_bytes"]
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
    bound = bound_schema(request.registry, schema)
    colander_validator(request, schema=bound, deserializer=lambda _: cstruct)
