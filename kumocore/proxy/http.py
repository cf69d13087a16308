"""``proxy.start_http_listener``: the proxy's metrics and health check over HTTP.

``/metrics`` (Prometheus text), ``/metrics.json`` and ``/proxy/status`` (KumoProxy's
health check, "KumoProxy OK"), each served only to the listener's ``trusted_hosts``
(others get a JSON 401, as KumoMTA's listeners answer them).

Untrusted peers can still connect, so the listener runs behind kumocore's
:class:`~kumocore.http.connections.ConnectionGuard` with ``kumo.start_http_listener``'s
defaults (KumoProxy's options do not name them): at most ``max_connections`` clients (64
per peer), headers within ``header_timeout``, idle connections closed after
``keepalive_timeout``. Without it a peer that connects and sends nothing, or a byte now
and then, would hold a descriptor for ever, and enough of them would leave the SOCKS5
listeners none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from kumocore.config.listeners import HttpListenerConfig
from kumocore.errors import ConfigError
from kumocore.http.guard import untrusted_peer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _trusted_only(config: HttpListenerConfig) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = untrusted_peer(config, request)
        return refusal if refusal is not None else await handler(request)

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


class HttpListener:
    """One started listener; :meth:`cleanup` stops it and closes its connections."""

    def __init__(self, runner: web.AppRunner, server: asyncio.Server) -> None:
        self.runner = runner
        self.server = server

    async def cleanup(self) -> None:
        self.server.close()
        await self.runner.cleanup()
        await self.server.wait_closed()


async def start_http(config: HttpListenerConfig, registry: CollectorRegistry) -> HttpListener:
    from kumocore.http.connections import ConnectionGuard, connection_cap
    from kumocore.http.guard import make_connection_middleware
    from kumocore.reception.tls import server_context

    holder: list[Callable[[], asyncio.Protocol]] = []
    guard = ConnectionGuard(
        lambda: holder[0](), max_connections=connection_cap(config.max_connections),
        max_per_peer=config.max_connections_per_peer, header_timeout=config.header_timeout,
        keepalive_timeout=config.keepalive_timeout, trusted=config.trusted_hosts.contains,
    )  # fmt: skip
    app = make_app(config, registry)
    app.middlewares.insert(0, make_connection_middleware(guard))
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=config.keepalive_timeout)
    await runner.setup()
    assert runner.server is not None
    holder.append(runner.server)
    ssl_context = None
    if config.use_tls:
        ssl_context = server_context(config.hostname, config.tls_certificate,
                                     config.tls_private_key)  # fmt: skip
    host, port = config.listen_host_port()
    try:
        server = await asyncio.get_running_loop().create_server(
            guard, host or None, port, ssl=ssl_context, reuse_address=True,
            ssl_handshake_timeout=config.header_timeout if ssl_context else None,
        )  # fmt: skip
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"proxy.start_http_listener: cannot listen on {config.listen}: "
                          f"{exc.strerror or exc}") from exc  # fmt: skip
    return HttpListener(runner, server)
