"""GET /openapi.json: a valid OpenAPI 2.0 document, and real answers match what it declares."""

import copy
import json

import jsonschema
import pytest
import webtest
from openapi_spec_validator import OpenAPIV2SpecValidator, validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from emailsvc import main
from emailsvc.api import schemas

VALID = {"recipients": ["ana@example.org"], "subject": "Réunion", "content": "Bonjour"}


def as_json_schema(schema):
    """Swagger 2.0's schema dialect as JSON Schema: ``x-nullable`` becomes a null type."""
    schema = copy.deepcopy(schema)

    def convert(node):
        if isinstance(node, dict):
            if node.pop("x-nullable", False) and "type" in node:
                node["type"] = [node["type"], "null"]
            for value in node.values():
                convert(value)
        elif isinstance(node, list):
            for value in node:
                convert(value)

    convert(schema)
    return schema


def response_schema(spec, path, method, status):
    """The JSON Schema an answer must match, ``$ref`` to the spec's definitions resolvable."""
    declared = spec["paths"][path][method]["responses"][str(status)]["schema"]
    return as_json_schema(dict(declared, definitions=spec.get("definitions", {})))


def post(app, body, status, **kwargs):
    return app.post(
        "/email", json.dumps(body), status=status, content_type="application/json", **kwargs
    )


@pytest.fixture
def spec(app):
    return app.get("/openapi.json", status=200).json


def test_the_document_is_valid_openapi_2(spec):
    validate(spec, cls=OpenAPIV2SpecValidator)
    assert spec["info"]["title"] == "emailsvc" and spec["info"]["version"] == "1.0.0"


def test_a_broken_document_is_rejected_by_the_validator(spec):
    broken = copy.deepcopy(spec)
    broken["paths"]["/email"]["post"]["responses"]["202"] = {"schema": {"type": "object"}}
    with pytest.raises(OpenAPIValidationError, match="responses"):
        validate(broken, cls=OpenAPIV2SpecValidator)


def test_every_endpoint_declares_its_statuses_and_their_documents(spec):
    operations = {
        (path, method): op for path, item in spec["paths"].items() for method, op in item.items()
        if method != "parameters"
    }  # fmt: skip
    assert set(operations) == {
        ("/email", "post"),
        ("/email/render", "post"),
        ("/email/{task_id}", "get"),
        ("/suppressions", "get"),
        ("/suppressions/{email}", "put"),
        ("/suppressions/{email}", "get"),
        ("/suppressions/{email}", "delete"),
    }
    names = {key: op["operationId"] for key, op in operations.items()}
    assert names["/suppressions", "get"] == "list_suppressions"
    assert [names["/suppressions/{email}", m] for m in ("put", "get", "delete")] == [
        "add_suppression",
        "get_suppression",
        "remove_suppression",
    ]
    send, status = operations["/email", "post"], operations["/email/{task_id}", "get"]
    render = operations["/email/render", "post"]
    assert sorted(render["responses"]) == ["200", "400", "401", "403", "413", "415", "429", "503"]
    assert render["operationId"] == "render_email"
    rendered = render["responses"]["200"]["schema"]["properties"]
    assert sorted(rendered) == ["html", "mime", "subject", "text"]
    assert sorted(send["responses"]) == [
        "202", "400", "401", "403", "409", "413", "415", "422", "429", "503"
    ]  # fmt: skip
    assert sorted(status["responses"]) == ["200", "401", "404", "503"]
    for op in operations.values():
        assert all("schema" in response for response in op["responses"].values())
    assert send["operationId"] == "send_email" and status["operationId"] == "get_email_status"
    assert send["responses"]["202"]["headers"]["Location"]["type"] == "string"
    assert send["responses"]["503"]["headers"]["Retry-After"]["type"] == "integer"
    assert send["responses"]["429"]["headers"]["Retry-After"]["type"] == "integer"
    assert send["responses"]["409"]["headers"]["Retry-After"]["type"] == "integer"
    for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"):
        assert send["responses"]["202"]["headers"][name]["type"] == "integer"
        assert send["responses"]["429"]["headers"][name]["type"] == "integer"
    assert send["responses"]["202"]["headers"]["Idempotent-Replayed"]["type"] == "string"


def test_request_schemas_come_from_colander_bound_to_the_settings(spec):
    body, key = spec["paths"]["/email"]["post"]["parameters"]
    assert (key["name"], key["in"], key["type"]) == ("Idempotency-Key", "header", "string")
    assert key.get("required", False) is False and "255" in key["description"]
    assert key["pattern"] == schemas.IDEMPOTENCY_KEY_PATTERN
    schema = body["schema"]
    assert body["in"] == "body" and body["required"] is True
    assert sorted(schema["required"]) == ["recipients", "subject"]
    assert schema["additionalProperties"] is False
    properties = schema["properties"]
    for field in ("content", "html", "reply_to", "headers", "attachments", "pdf_attachments"):
        assert properties[field]["description"], field
    attachment = properties["attachments"]["items"]
    assert sorted(attachment["required"]) == ["content", "content_type", "filename"]
    assert attachment["additionalProperties"] is False and "content_id" in attachment["properties"]
    assert properties["headers"]["maxProperties"] == 20
    assert properties["pdf_attachments"]["maxItems"] == 5
    assert "cc" in properties["recipients"]["items"]["description"]
    assert schema["properties"]["recipients"]["maxItems"] == 10000
    assert schema["properties"]["template"]["enum"] == ["default"]
    assert schema["properties"]["subject"]["maxLength"] == 998
    [task_id] = spec["paths"]["/email/{task_id}"]["get"]["parameters"]
    assert (task_id["name"], task_id["in"], task_id["required"]) == ("task_id", "path", True)


def test_the_subject_pattern_agrees_with_the_validator(app, spec):
    pattern = spec["paths"]["/email"]["post"]["parameters"][0]["schema"]["properties"]["subject"]
    checker = jsonschema.Draft4Validator(pattern)
    for subject in ["Réunion de lundi", "a\r\nBcc: x@evil.org", "a\u2028b", "a\x00b"]:
        accepted = post(app, dict(VALID, subject=subject), "*").status_code == 202
        assert checker.is_valid(subject) == accepted, subject


def test_real_answers_match_their_declared_schemas(app, spec):
    accepted = post(app, VALID, 202)
    answers = [
        ("/email", "post", accepted),
        ("/email/{task_id}", "get", app.get(f"/email/{accepted.json['id']}", status=200)),
        ("/email/{task_id}", "get", app.get("/email/" + "0" * 32, status=404)),
        ("/email", "post", post(app, dict(VALID, recipients=["nope"]), 400)),
        ("/email", "post", app.post("/email", "x=1", status=415)),
    ]
    for path, method, answer in answers:
        schema = response_schema(spec, path, method, answer.status_code)
        jsonschema.validate(answer.json, schema)
    assert accepted.headers["Location"] == accepted.json["status_url"]


def test_a_document_that_breaks_the_declared_schema_is_caught(spec):
    schema = response_schema(spec, "/email/{task_id}", "get", 200)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"id": "x", "status": "lost"}, schema)


def test_413_and_503_answers_match_their_declared_schemas(settings, spec):
    small = webtest.TestApp(
        main(
            {},
            **dict(
                settings,
                **{"emailsvc.max_body_bytes": "1024", "emailsvc.max_attachment_bytes": "0"},
            ),
        )
    )
    too_large = post(small, dict(VALID, content="x" * 2000), 413)
    jsonschema.validate(too_large.json, response_schema(spec, "/email", "post", 413))
    # Nothing listens on port 1: the job store is unavailable.
    down = dict(settings, **{"emailsvc.redis_url": "redis://127.0.0.1:1/0"})
    unavailable = post(webtest.TestApp(main({}, **down)), VALID, 503)
    jsonschema.validate(unavailable.json, response_schema(spec, "/email", "post", 503))
    assert int(unavailable.headers["Retry-After"]) > 0
