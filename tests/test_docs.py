"""Pages for people: the index at / and Swagger UI at /docs, with no file from elsewhere."""

import re

from swagger_ui_bundle import swagger_ui_path


def test_the_index_lists_every_endpoint_and_links_the_documentation(app):
    index = app.get("/", status=200).json
    assert index["name"] == "emailsvc"
    assert index["documentation"] == "http://localhost/docs"
    assert index["openapi"] == "http://localhost/openapi.json"
    listed = {(e["method"], e["path"]) for e in index["endpoints"]}
    for endpoint in [
        ("POST", "/email"),
        ("GET", "/email/{task_id}"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("GET", "/spore"),
        ("GET", "/__heartbeat__"),
    ]:
        assert endpoint in listed
    assert all(e["description"] for e in index["endpoints"])


def test_a_browser_gets_the_index_as_a_page_with_a_link_to_the_docs(app):
    page = app.get("/", headers={"Accept": "text/html,*/*;q=0.8"}, status=200)
    assert page.content_type == "text/html"
    assert '<a href="http://localhost/docs">' in page.text
    assert "<td>POST</td><td>/email</td>" in page.text


def test_docs_is_swagger_ui_on_this_services_openapi_with_local_files_only(app):
    page = app.get("/docs", status=200)
    assert page.content_type == "text/html"
    assert 'url: "/openapi.json"' in page.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(source.startswith("/docs/static/") for source in sources)
    # Every file the page loads is served here, as the package ships it.
    for source in sources:
        served = app.get(source, status=200)
        name = source.rsplit("/", 1)[-1]
        assert served.body == (swagger_ui_path / name).read_bytes()


def test_docs_and_index_answer_json_errors_for_other_methods(app):
    for path in ("/", "/docs"):
        assert app.post(path, status=405).json["status"] == "error"
