"""No input yields a 5xx: generated bodies, paths and query strings, lone surrogates
included, through the real app."""

import json
from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Any code point, lone UTF-16 surrogates included and made frequent (hypothesis leaves them
# out by default, and they are too rare among all code points to be drawn by chance).
ANY_CHAR = st.one_of(
    st.characters(exclude_categories=()),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
)
TEXT = st.text(ANY_CHAR, max_size=40)
# Printable text with lone surrogates: it passes the one-line checks and reaches storage.
ONE_LINE = st.text(
    st.one_of(
        st.characters(categories=["L", "N", "P", "S", "Zs"]),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
    ),
    min_size=1,
    max_size=40,
)
ADDRESS = st.one_of(
    st.emails(),
    st.builds(lambda local, domain: f"{local}@{domain}", TEXT, TEXT),
    TEXT,
)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=10,
)
RECIPIENT = st.one_of(
    ADDRESS,
    st.fixed_dictionaries(
        {"email": ADDRESS},
        optional={
            "name": TEXT,
            "vars": st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), TEXT),
        },
    ),
    JSON_VALUE,
)
# Bodies that pass most checks, so that odd text reaches storage and message building.
NEAR_VALID_BODY = st.fixed_dictionaries(
    {
        "recipients": st.lists(
            st.sampled_from(["ana@example.org", "bo@example.net"])
            | st.fixed_dictionaries(
                {"email": st.just("ana@example.org")},
                optional={"name": ONE_LINE, "vars": st.dictionaries(st.just("order"), ONE_LINE)},
            ),
            min_size=1,
            max_size=3,
        ),
        "subject": ONE_LINE,
        "content": ONE_LINE,
    },
    optional={"template": st.just("default")},
)
ANY_BODY = st.fixed_dictionaries(
    {},
    optional={
        "recipients": st.lists(RECIPIENT, max_size=4) | JSON_VALUE,
        "subject": TEXT | JSON_VALUE,
        "content": TEXT | JSON_VALUE,
        "template": st.sampled_from(["default", "../x", ""]) | TEXT,
        "from": ADDRESS,
        "extra": JSON_VALUE,
    },
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.one_of(NEAR_VALID_BODY, ANY_BODY))
def test_generated_bodies_never_get_a_5xx(app, body):
    raw = json.dumps(body)  # ensure_ascii: surrogates travel as \\udXXX escapes
    headers = {"Content-Type": "application/json"}
    response = app.post("/email", raw, headers=headers, expect_errors=True)
    assert response.status_int < 500, (raw, response.text)
    if response.status_int >= 400:
        assert response.json["status"] == "error"


# What a WSGI header can hold: Latin-1 without line breaks; quoted or not.
HEADER_VALUE = st.text(
    st.characters(max_codepoint=0xFF, exclude_characters="\r\n", exclude_categories=()),
    max_size=300,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=NEAR_VALID_BODY, key=HEADER_VALUE | HEADER_VALUE.map(lambda v: f'"{v}"'))
def test_generated_idempotency_keys_never_get_a_5xx(app, body, key):
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    response = app.post("/email", json.dumps(body), headers=headers, expect_errors=True)
    assert response.status_int in (202, 400, 422), (key, response.text)


def test_a_lone_surrogate_anywhere_gets_400_naming_it(app):
    good = {"recipients": ["a@example.org"], "subject": "s", "content": "c"}
    for field in ("subject", "content"):
        raw = json.dumps(dict(good, **{field: "x\ud800y"}))
        response = app.post(
            "/email", raw, headers={"Content-Type": "application/json"}, status=400
        )
        assert "surrogate" in response.json["errors"][0]["description"]
    named = dict(good, recipients=[{"email": "a@example.org", "name": "\udfff"}])
    response = app.post(
        "/email", json.dumps(named), headers={"Content-Type": "application/json"}, status=400
    )
    assert "surrogate" in response.json["errors"][0]["description"]


def test_a_query_string_that_is_not_utf8_gets_400(app):
    error = app.get("/suppressions?reason=%ED%A0%80", status=400).json["errors"][0]
    assert error["location"] == "querystring"


def test_a_surrogate_pair_is_ordinary_text(app):
    body = {"recipients": ["a@example.org"], "subject": "\U0001f600 hello", "content": "c"}
    raw = json.dumps(body)
    assert "\\ud83d\\ude00" in raw
    app.post("/email", raw, headers={"Content-Type": "application/json"}, status=202)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    email=ADDRESS,
    token=TEXT,
    query=st.dictionaries(st.sampled_from(["reason", "cursor", "limit", "x"]), TEXT, max_size=3),
    body=TEXT,
)
def test_generated_suppression_and_unsubscribe_requests_never_get_a_5xx(
    app, email, token, query, body
):
    def encoded(text):
        # Valid UTF-8 in paths: a path that is not is refused before any view, elsewhere.
        return quote(text.encode("utf-8", "replace"), safe="")

    requests = [
        ("put", f"/suppressions/{encoded(email)}"),
        ("get", f"/suppressions/{encoded(email)}"),
        ("delete", f"/suppressions/{encoded(email)}"),
        (
            "get",
            "/suppressions?"
            + urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in query.items()}),
        ),
        ("get", f"/unsubscribe/{encoded(token)}"),
    ]
    for method, path in requests:
        response = getattr(app, method)(path, expect_errors=True)
        assert response.status_int < 500, (method, path, response.text)
    response = app.post(
        f"/unsubscribe/{encoded(token)}",
        body.encode("utf-8", "surrogatepass"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        expect_errors=True,
    )
    assert response.status_int == 404
