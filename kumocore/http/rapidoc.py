"""``GET /rapidoc``: a browsable view of the listener's ``/api-docs/openapi.json``.

KumoMTA's HTTP listeners (``kumod``'s, its tsa-daemon's and its proxy server's) serve
RapiDoc at this path; so do kumocore's. The page is static and names the document by a
relative URL, so it shows the routes of whichever listener served it. The browser loads
RapiDoc's script from unpkg.com, as KumoMTA's page does: the server never fetches it.
"""

from __future__ import annotations

from aiohttp import web

__all__ = ["RAPIDOC_PATH", "RAPIDOC_PATHS", "serve_rapidoc"]

RAPIDOC_PATH = "/rapidoc"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>API documentation</title>
<script type="module" src="https://unpkg.com/rapidoc/dist/rapidoc-min.js"></script>
</head>
<body>
<rapi-doc spec-url="/api-docs/openapi.json"></rapi-doc>
</body>
</html>
"""

#: Its OpenAPI path item, for the listeners' documents.
RAPIDOC_PATHS = {
    RAPIDOC_PATH: {"get": {
        "tags": ["docs"], "summary": "Browsable documentation of this listener's API",
        "responses": {"200": {"description": "An HTML page (RapiDoc)",
                              "content": {"text/html": {"schema": {"type": "string"}}}}},
    }},
}  # fmt: skip


async def serve_rapidoc(_: web.Request) -> web.Response:
    return web.Response(text=_PAGE, content_type="text/html", charset="utf-8")
