"""GET /spore and spore.json: generated from the Cornice services, valid SPORE."""

import json
import os
from types import SimpleNamespace

import colander
import jsonschema
import pytest
import webtest
from cornice import Service
from pyramid.config import Configurator

from emailsvc import main
from emailsvc.api import spore
from emailsvc.cli.spore import describe_ini
from emailsvc.cli.spore import main as spore_script
from emailsvc.settings import load

from .harness import ROOT

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def spore_validator():
    with open(os.path.join(HERE, "spore_schema.json"), encoding="utf-8") as handle:
        schema = json.load(handle)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_served_description_follows_the_spore_rules(app, spore_validator):
    description = app.get("/spore", status=200).json
    spore_validator.validate(description)


def test_the_rules_reject_what_spore_forbids(app, spore_validator):
    description = app.get("/spore", status=200).json
    without_path = json.loads(json.dumps(description))
    del without_path["methods"]["send_email"]["path"]
    unknown_key = dict(description, payload_required=True)
    wrong_type = dict(description, authentication="yes")
    for broken in (without_path, unknown_key, wrong_type):
        assert not spore_validator.is_valid(broken)


def test_the_description_names_this_service_and_its_methods(app):
    description = app.get("/spore", extra_environ={"HTTP_HOST": "mail.example.net:8443"}).json
    assert description["name"] == "emailsvc" and description["version"] == "1.0.0"
    assert description["base_url"] == "http://mail.example.net:8443"
    assert description["formats"] == ["json"] and description["authentication"] is False
    methods = description["methods"]
    assert set(methods) == {"send_email", "get_email_status", "render_email"} | {
        "add_suppression",
        "remove_suppression",
        "get_suppression",
        "list_suppressions",
    }
    send, status = methods["send_email"], methods["get_email_status"]
    render = methods["render_email"]
    assert (render["method"], render["path"]) == ("POST", "/email/render")
    assert render["expected_status"] == [200, 400, 401, 403, 413, 415, 429, 503]
    assert "\n- recipient: The index of the recipient" in render["description"]
    assert (send["method"], send["path"], send["required_payload"]) == ("POST", "/email", True)
    assert send["expected_status"] == [202, 400, 401, 403, 409, 413, 415, 422, 429, 503]
    assert "\n\nRequest headers:\n- Idempotency-Key: A key of your choice" in send["description"]
    assert send["description"].startswith("Accept an email job")
    fields = ["recipients", "subject", "content", "html", "template", "from", "reply_to"]
    fields += ["headers", "attachments", "pdf_attachments"]
    # Every field is described, from the schema.
    for field in fields:
        assert f"\n- {field}" in send["description"]
    assert "- html: The HTML" in send["description"]
    assert (status["method"], status["path"]) == ("GET", "/email/:task_id")
    assert status["required_params"] == ["task_id"]
    assert status["expected_status"] == [200, 401, 404, 503]
    assert status["description"].startswith("Report an email job's progress")
    listing, remove = methods["list_suppressions"], methods["remove_suppression"]
    assert (listing["method"], listing["path"]) == ("GET", "/suppressions")
    assert listing["optional_params"] == ["reason", "cursor", "limit"]
    assert (remove["method"], remove["path"]) == ("DELETE", "/suppressions/:email")
    assert remove["required_params"] == ["email"]
    assert remove["expected_status"] == [200, 400, 401, 404, 409, 429, 503]
    assert (methods["add_suppression"]["method"], methods["get_suppression"]["method"]) == (
        "PUT",
        "GET",
    )


def test_authentication_is_announced_exactly_when_keys_are_required(settings):
    required = dict(settings, **{"emailsvc.require_api_key": "true"})
    assert webtest.TestApp(main({}, **required)).get("/spore").json["authentication"] is True
    optional = dict(settings, **{"emailsvc.require_api_key": "off"})
    assert webtest.TestApp(main({}, **optional)).get("/spore").json["authentication"] is False


class _Query(colander.MappingSchema):
    limit = colander.SchemaNode(colander.Int())
    cursor = colander.SchemaNode(colander.String(), missing=colander.drop)


class _ListRequest(colander.MappingSchema):
    querystring = _Query()


def test_a_new_service_and_its_parameters_appear_without_touching_the_generator():
    # Services of this test's own, in a configuration of its own.
    listing = Service(name="list_things", path="/things/{kind}", depth=2)
    health = Service(name="health", path="/__health__", depth=2)

    @listing.get(schema=_ListRequest)
    def list_things(request):
        """List the things of a kind."""

    @health.get()
    def check(request):
        """Not part of the API: it declares no schema."""

    with Configurator(settings={}) as config:
        # The description reads only the typed settings of the service it describes.
        config.registry.emailsvc = SimpleNamespace(settings=load({}, environ={}))
        config.include("cornice")
        config.include("cornice_swagger")
        config.add_cornice_service(listing)
        config.add_cornice_service(health)
        registry = config.registry
    description = spore.describe(registry)
    assert set(description["methods"]) == {"list_things"}
    assert description["methods"]["list_things"] == {
        "method": "GET",
        "path": "/things/:kind",
        "required_params": ["kind", "limit"],
        "optional_params": ["cursor"],
        "description": "List the things of a kind.",
    }
    assert "base_url" not in description


def test_descriptions_describe_themselves_out(app):
    paths = set(app.get("/openapi.json").json["paths"])
    assert paths == {"/email", "/email/render", "/email/{task_id}"} | {
        "/suppressions",
        "/suppressions/{email}",
    }
    assert {m["path"] for m in app.get("/spore").json["methods"].values()} == {
        "/email",
        "/email/render",
        "/email/:task_id",
        "/suppressions",
        "/suppressions/:email",
    }


def test_the_committed_spore_json_is_what_production_ini_generates(monkeypatch):
    for name in list(os.environ):
        if name.startswith("EMAILSVC_"):
            monkeypatch.delenv(name)
    # Nothing listens on port 1: generating the description needs no Redis.
    monkeypatch.setenv("EMAILSVC_REDIS_URL", "redis://127.0.0.1:1/0")
    generated = spore.dumps(describe_ini(os.path.join(ROOT, "production.ini")))
    with open(os.path.join(ROOT, "spore.json"), encoding="utf-8") as handle:
        committed = handle.read()
    assert committed == generated, (
        "spore.json is stale: emailsvc-spore production.ini -o spore.json"
    )
    assert "base_url" not in json.loads(committed)


def test_the_console_script_writes_the_description(tmp_path, monkeypatch):
    monkeypatch.setenv("EMAILSVC_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("EMAILSVC_REQUIRE_API_KEY", "true")
    out = tmp_path / "spore.json"
    assert spore_script([os.path.join(ROOT, "production.ini"), "-o", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["authentication"] is True
