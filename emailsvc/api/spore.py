"""The SPORE description of the API, generated from the registered Cornice services.

Nothing here names an endpoint: each method comes from a Cornice service, its Colander
schema, its ``response_schemas`` and its view's docstring, so a new service or parameter
shows up in ``GET /spore`` (and in ``spore.json``) without touching this module.
"""

import inspect
import json
import re
from importlib.metadata import version

import colander
from cornice import Service

NAME = "emailsvc"
# Cornice paths name placeholders "{name}" (optionally "{name:regex}"); SPORE writes ":name".
_PLACEHOLDER = re.compile(r"\{(\w+)(?::[^}]*)?\}")
# Cornice adds these for CORS and HEAD; they are not operations of the API.
_SKIPPED_METHODS = {"HEAD", "OPTIONS"}

spore = Service(name="spore", path="/spore", description="This API's SPORE description.")


def request_schema(args):
    """The Colander request schema a view declares (an instance), or None."""
    schema = args.get("schema")
    if inspect.isclass(schema):
        schema = schema()
    return schema if isinstance(schema, colander.SchemaNode) else None


def api_services(registry):
    """The services of the public API: those whose views declare a Colander request schema.

    Endpoints about the service itself (its descriptions, health checks) declare none, so
    they stay out of the descriptions.
    """
    services = registry.cornice_services.values()
    return sorted(
        (s for s in services if any(request_schema(args) for _, _, args in s.definitions)),
        key=lambda s: s.path,
    )


def _children(schema, location):
    node = schema.get(location) if schema is not None else None
    return list(node.children) if node is not None else []


def describe_method(service, method, view, args):
    """The SPORE entry of one view: path, parameters, payload, statuses and description."""
    schema = request_schema(args)
    required = _PLACEHOLDER.findall(service.path)
    optional = []
    for node in _children(schema, "path") + _children(schema, "querystring"):
        target = required if node.required else optional
        if node.name not in required + optional:
            target.append(node.name)
    entry = {"method": method, "path": _PLACEHOLDER.sub(r":\1", service.path)}
    if required:
        entry["required_params"] = required
    if optional:
        entry["optional_params"] = optional
    body = schema.get("body") if schema is not None else None
    if body is not None and body.required:
        entry["required_payload"] = True
    statuses = sorted(int(code) for code in args.get("response_schemas", {}))
    if statuses:
        entry["expected_status"] = statuses
    doc = inspect.getdoc(view)
    if body is not None and body.children:
        # The body's fields, in the description: SPORE's own "payload" list is not read by
        # every client (britney refuses it).
        doc = "\n\n".join(filter(None, [doc, payload_fields(body)]))
    headers = schema.get("headers") if schema is not None else None
    if headers is not None and headers.children:
        # SPORE's "headers" are fixed values a client always sends; these are the client's
        # choice, so they are described like the payload.
        doc = "\n\n".join(filter(None, [doc, header_fields(headers)]))
    if doc:
        entry["description"] = doc
    return entry


def payload_fields(body):
    """One line per field of a request body: its name, whether required, its description."""
    lines = ["Payload fields:"]
    for node in body.children:
        required = " (required)" if node.required else ""
        description = f": {node.description}" if node.description else ""
        lines.append(f"- {node.name}{required}{description}")
    return "\n".join(lines)


def header_fields(headers):
    """One line per request header a view reads: its name and description."""
    lines = ["Request headers:"]
    lines += [f"- {node.name}: {node.description}" for node in headers.children]
    return "\n".join(lines)


def operations(service):
    """The service's ``(method, view, args)`` definitions that are API operations."""
    return [d for d in service.definitions if d[0] not in _SKIPPED_METHODS]


def operation_name(service, method):
    """The name of an operation, in SPORE as in OpenAPI (``operationId``)."""
    # A view may name its operation (cornice_swagger's ``operation_id``), as the methods of
    # /suppressions/{email} do; else a service's one method takes the service's name, and
    # a service with several gets one name per HTTP method.
    for defined, _, args in operations(service):
        if defined == method and args.get("operation_id"):
            return args["operation_id"]
    if len(operations(service)) == 1:
        return service.name
    return f"{service.name}_{method.lower()}"


def describe(registry, base_url=None):
    """The SPORE description of the app whose registry is given; ``base_url`` when known."""
    methods = {}
    for service in api_services(registry):
        for method, view, args in operations(service):
            methods[operation_name(service, method)] = describe_method(service, method, view, args)
    description = {
        "name": NAME,
        "version": version(NAME),
        "formats": ["json"],
        "authentication": registry.emailsvc.settings["emailsvc.require_api_key"],
        "methods": methods,
    }
    if base_url is not None:
        description["base_url"] = base_url
    return description


def dumps(description):
    """The description as the committed ``spore.json`` holds it: stable order, final newline."""
    return json.dumps(description, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@spore.get()
def get_spore(request):
    """This API's SPORE description, with ``base_url`` this server as the client sees it."""
    # application_url follows the Host header, and the trusted proxy's X-Forwarded-*
    # (waitress rewrites the environ for it).
    return describe(request.registry, base_url=request.application_url)


def includeme(config):
    """``GET /spore``."""
    config.scan(__name__)
