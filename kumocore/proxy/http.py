"""``proxy.start_http_listener``: the proxy's metrics and health check over HTTP.

``/metrics`` (Prometheus text), ``/metrics.json`` and ``/proxy/status`` (KumoProxy's
health check, "KumoProxy OK"), each served only to the listener's ``trusted_hosts``
(others get a JSON 401, as KumoMTA's listeners answer them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from kumocore.config.listeners import HttpListenerConfig
from kumocore.errors import ConfigError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _trusted_only(config: HttpListenerConfig) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote or ""
        try:
            allowed = config.trusted_hosts.contains(peer)
        except ValueError:
            allowed = False
        if not allowed:
            return web.json_response({"error": f"{peer} is not a trusted host"}, status=401)
        return await handler(request)

    return guard


def make_app(config: HttpListenerConfig, registry: CollectorRegistry) -> web.Application:
    from kumocore.admin.metrics import render_json, render_text

    async def metrics(_: web.Request) -> web.StreamResponse:
        return web.Response(body=render_text(registry),
                            content_type="text/plain", charset="utf-8")  # fmt: skip

    async def metrics_json(_: web.Request) -> web.StreamResponse:
        return web.json_response(render_json(registry))

    async def status(_: web.Request) -> web.StreamResponse:
        return web.Response(text="KumoProxy OK")

    app = web.Application(middlewares=[_trusted_only(config)],
                          client_max_size=config.request_body_limit)  # fmt: skip
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/metrics.json", metrics_json)
    app.router.add_get("/proxy/status", status)
    return app


async def start_http(config: HttpListenerConfig, registry: CollectorRegistry) -> web.AppRunner:
    from kumocore.reception.tls import server_context

    runner = web.AppRunner(make_app(config, registry), access_log=None)
    await runner.setup()
    ssl_context = None
    if config.use_tls:
        ssl_context = server_context(config.hostname, config.tls_certificate,
                                     config.tls_private_key)  # fmt: skip
    host, port = config.listen_host_port()
    try:
        await web.TCPSite(runner, host or None, port, ssl_context=ssl_context).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"proxy.start_http_listener: cannot listen on {config.listen}: "
                          f"{exc.strerror or exc}") from exc  # fmt: skip
    return runner
