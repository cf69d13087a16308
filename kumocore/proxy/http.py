"""``proxy.start_http_listener``: the proxy's metrics and health check over HTTP.

``/metrics`` (Prometheus text), ``/metrics.json`` and ``/proxy/status`` (KumoProxy's
health check, "KumoProxy OK"), each served only to the listener's ``trusted_hosts``
(others get a JSON 401, as KumoMTA's listeners answer them), with
``kumo.start_http_listener``'s connection limits (:mod:`kumocore.http.service`; KumoProxy's
options do not name them). Without them a peer that connects and sends nothing, or a byte
now and then, would hold a descriptor for ever, and enough of them would leave the SOCKS5
listeners none.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from kumocore.config.http_listener import HttpListenerConfig
from kumocore.http.service import ServiceListener, start_service_listener


def add_routes(app: web.Application, registry: CollectorRegistry) -> None:
    from kumocore.admin.metrics import render_json, render_text

    async def metrics(_: web.Request) -> web.StreamResponse:
        return web.Response(body=render_text(registry),
                            content_type="text/plain", charset="utf-8")  # fmt: skip

    async def metrics_json(_: web.Request) -> web.StreamResponse:
        return web.json_response(render_json(registry))

    async def status(_: web.Request) -> web.StreamResponse:
        return web.Response(text="KumoProxy OK")

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/metrics.json", metrics_json)
    app.router.add_get("/proxy/status", status)


_TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}
#: This listener's own routes, for its /api-docs/openapi.json.
OPENAPI_PATHS = {
    "/metrics": {"get": {"tags": ["metrics"], "summary": "Prometheus metrics (text)",
                         "responses": {"200": {"description": "OK", **_TEXT}}}},
    "/metrics.json": {"get": {"tags": ["metrics"], "summary": "The metrics as JSON",
                              "responses": {"200": {"description": "OK"}}}},
    "/proxy/status": {"get": {"tags": ["status"], "summary": "Health check",
                              "responses": {"200": {"description": "KumoProxy OK", **_TEXT}}}},
}  # fmt: skip


async def start_http(config: HttpListenerConfig, registry: CollectorRegistry) -> ServiceListener:
    return await start_service_listener(
        config, lambda app: add_routes(app, registry), function="proxy.start_http_listener",
        title="kumocore proxy", paths=OPENAPI_PATHS,
    )  # fmt: skip
