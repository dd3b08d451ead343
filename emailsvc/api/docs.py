"""Pages for people: ``/`` (an index of the endpoints) and ``/docs`` (Swagger UI).

Swagger UI's files come from the ``swagger-ui-bundle`` package and are served by this
service under ``/docs/static/``: the page loads nothing from another site.
"""

import html
from importlib.metadata import version

from cornice import Service
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED
from swagger_ui_bundle import swagger_ui_path

from .spore import NAME, operations

index = Service(name="index", path="/", description="The endpoints of this service.")
docs = Service(name="docs", path="/docs", description="This API's documentation (Swagger UI).")

STATIC = "docs/static"

DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{name} {version}: API documentation</title>
<link rel="stylesheet" href="{css}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{js}"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "{openapi}",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
}});
</script>
</body>
</html>
"""

INDEX_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{name} {version}</title></head>
<body>
<h1>{name} {version}</h1>
<p>Documentation: <a href="{docs}">{docs}</a></p>
<table>
<tr><th>method</th><th>path</th><th>what</th></tr>
{rows}
</table>
</body>
</html>
"""


def endpoints(request):
    """``[{"method", "path", "description"}]`` for every Cornice service, by path."""
    result = []
    services = sorted(request.registry.cornice_services.values(), key=lambda s: s.path)
    for service in services:
        for method in sorted({method for method, _, _ in operations(service)}):
            result.append(
                {"method": method, "path": service.path, "description": service.description}
            )
    return result


@index.get(permission=NO_PERMISSION_REQUIRED)
def get_index(request):
    """The service's name and version, its documentation and its endpoints.

    JSON by default; a small HTML page for a browser (``Accept: text/html``).
    """
    listed = endpoints(request)
    docs_url = request.route_url(docs.name)
    # JSON first: it wins when the client states no preference.
    offers = request.accept.acceptable_offers(["application/json", "text/html"])
    if offers and offers[0][0] == "text/html":
        rows = "\n".join(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                *(html.escape(e[key]) for key in ("method", "path", "description"))
            )
            for e in listed
        )
        page = INDEX_PAGE.format(
            name=NAME, version=version(NAME), docs=html.escape(docs_url), rows=rows
        )
        return Response(page, content_type="text/html", charset="utf-8")
    return {
        "name": NAME,
        "version": version(NAME),
        "documentation": docs_url,
        "openapi": request.route_url("openapi"),
        "spore": request.route_url("spore"),
        "endpoints": listed,
    }


@docs.get(permission=NO_PERMISSION_REQUIRED)
def get_docs(request):
    """Swagger UI on this service's ``/openapi.json``, from files served here."""
    page = DOCS_PAGE.format(
        name=NAME,
        version=version(NAME),
        css=html.escape(request.static_path(f"{swagger_ui_path}/swagger-ui.css")),
        js=html.escape(request.static_path(f"{swagger_ui_path}/swagger-ui-bundle.js")),
        openapi=html.escape(request.route_path("openapi")),
    )
    return Response(page, content_type="text/html", charset="utf-8")


def includeme(config):
    """``/``, ``/docs`` and Swagger UI's files under ``/docs/static/``."""
    config.add_static_view(STATIC, str(swagger_ui_path), cache_max_age=3600)
    config.scan(__name__)
