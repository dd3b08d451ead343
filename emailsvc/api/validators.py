"""Request validators used by the Cornice services."""

import json
import re

import colander
from pyramid.httpexceptions import HTTPRequestEntityTooLarge
from translationstring import TranslationString

from .errors import excerpt

# colander's message for unknown fields prints their values (a dict repr of the client's
# data); ours names the fields.
_UNKNOWN_KEYS = "Unrecognized keys in mapping"
_MAX_NAMED_FIELDS = 10

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
    """The values deferred schema validators read: limits, the template names, the extras."""
    settings = assembly.settings
    return {
        "max_recipients": settings["emailsvc.max_recipients"],
        "max_content_bytes": settings["emailsvc.max_content_bytes"],
        "max_attachments": settings["emailsvc.max_attachments"],
        "max_attachment_bytes": settings["emailsvc.max_attachment_bytes"],
        "templates": assembly.templates.names,
        "html_templates": assembly.templates.html_names,
        "pdf": assembly.pdf is not None,
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
    validate(request, bound_schema(request.registry, schema), cstruct)


def safe_message(request, message):
    """Translate a colander message, the client's value in it cut to a short excerpt.

    colander's own messages interpolate the value they refused (``"${val}" is not
    iterable``); here ``${val}`` becomes ``errors.excerpt(val)``, and the message for
    unknown fields names them instead of printing their values.
    """
    if not isinstance(message, TranslationString) or "val" not in (message.mapping or {}):
        return request.localizer.translate(message)
    value = message.mapping["val"]
    if str(message).startswith(_UNKNOWN_KEYS) and isinstance(value, dict):
        names = sorted(value, key=str)
        shown = ", ".join(excerpt(name) for name in names[:_MAX_NAMED_FIELDS])
        more = f" and {len(names) - _MAX_NAMED_FIELDS} more" if len(names) > 10 else ""
        return f"Unknown fields: {shown}{more}"
    mapping = dict(message.mapping, val=excerpt(value))
    # The excerpt brings its own quotes.
    template = str(message).replace('"${val}"', "${val}")
    return request.localizer.translate(
        TranslationString(template, domain=message.domain, mapping=mapping)
    )


def validate(request, schema, cstruct):
    """Deserialize ``cstruct`` with ``schema`` as Cornice's colander validator does.

    The difference: each message goes through ``safe_message``, so that no answer echoes
    a client's value back beyond a short, escaped excerpt.
    """
    try:
        deserialized = schema.deserialize(cstruct)
    except colander.Invalid as exc:
        for name, message in exc.asdict(translate=lambda m: safe_message(request, m)).items():
            location, _, field = name.partition(".")
            request.errors.add(location, field, message)
    else:
        request.validated.update(deserialized)


def path_and_query_validator(request, schema=None, **kwargs):
    """Validate the path's placeholders and the query string with the service's schema."""
    try:
        query = dict(request.GET)
    except UnicodeDecodeError:
        # WebOb decodes the query string on first use; bytes that are not UTF-8 are no text.
        request.errors.add("querystring", "", "The query string must be UTF-8")
        return
    cstruct = {"path": dict(request.matchdict or {}), "querystring": query}
    validate(request, bound_schema(request.registry, schema), cstruct)
