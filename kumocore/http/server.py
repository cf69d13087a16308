"""Starting and stopping HTTP listeners (``kumo.start_http_listener``), on aiohttp.

Routes: ``POST /api/inject/v1`` (:mod:`kumocore.http.inject`), ``GET
/api/check-liveness/v1``, ``GET /api-docs/openapi.json`` (:mod:`kumocore.http.openapi`),
``GET /rapidoc`` (:mod:`kumocore.http.rapidoc`),
and — when the delivery side provides ``kumocore.admin.routes`` — ``/api/admin/*`` and
``/metrics`` via its ``add_admin_routes(app, runtime)``. Access rules are the middleware in
:mod:`kumocore.http.auth` (KumoMTA's ACLs, :mod:`kumocore.http.acl_check`); cross-site and
DNS-rebinding checks and the body deadline are in :mod:`kumocore.http.guard`; connection
caps and header/idle deadlines in :mod:`kumocore.http.connections`, bound under aiohttp by
:mod:`kumocore.http.binding` (as the trusted-hosts services' listeners are). ``use_tls``
serves HTTPS, with a generated self-signed certificate when none is configured.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from kumocore.http.auth import make_auth_middleware
from kumocore.http.binding import GuardedSite
from kumocore.http.connections import ConnectionGuard
from kumocore.http.guard import make_connection_middleware, make_request_guard
from kumocore.http.inject_deferred import QueueingInjectHandler
from kumocore.http.openapi import (
    OPENAPI_KEY,
    add_openapi_paths,
    base_document,
    serve_openapi,
)
from kumocore.http.rapidoc import RAPIDOC_PATH, serve_rapidoc
from kumocore.node import shedding

if TYPE_CHECKING:
    from kumocore.config import HttpListenerConfig
    from kumocore.node.runtime import Runtime

log = structlog.get_logger("kumocore.http")

__all__ = ["HttpListener", "make_app", "start_http_listener"]

RUNTIME_KEY: web.AppKey[Runtime] = web.AppKey("kumocore.node.runtime")
CONFIG_KEY: web.AppKey[HttpListenerConfig] = web.AppKey("kumocore.http_config")
#: Seconds in-flight requests may take to finish when the listener closes.
SHUTDOWN_GRACE = 5.0

STATE_KEY: web.AppKey[dict[str, bool]] = web.AppKey("kumocore.http_state")
GUARD_KEY: web.AppKey[ConnectionGuard] = web.AppKey("kumocore.http_guard")


async def check_liveness(request: web.Request) -> web.Response:
    """200 ``OK`` while accepting messages; 503 with the reason otherwise (KumoMTA texts)."""
    runtime = request.app[RUNTIME_KEY]
    if request.app[STATE_KEY].get("closing"):
        return web.Response(status=503, text="shutting down")
    if (reason := shedding.refusal()) is not None:  # memory or spool (kumocore.node.shedding)
        return web.Response(status=503, text=reason)
    services = runtime.services
    if services is None:
        return web.Response(status=503, text="waiting for spool enumeration")
    if services.storage.over_limit:  # min_free_* (issue 14)
        return web.Response(status=503, text="storage is too full")
    return web.Response(text="OK")


def make_app(
    runtime: Runtime, config: HttpListenerConfig, guard: ConnectionGuard | None = None
) -> web.Application:
    """The aiohttp application of one listener (exposed for tests and embedding)."""
    middlewares = [make_connection_middleware(guard), make_auth_middleware(runtime, config),
                   make_request_guard(config)]
    if runtime.node is not None:  # serve --workers N: admin answers for the whole node
        from kumocore.admin.fanout import make_fanout_middleware

        middlewares.append(make_fanout_middleware(runtime.node))
    app = web.Application(client_max_size=config.request_body_limit, middlewares=middlewares)
    app[RUNTIME_KEY] = runtime
    app[CONFIG_KEY] = config
    app[STATE_KEY] = {"closing": False}
    app[OPENAPI_KEY] = base_document()
    app.router.add_post("/api/inject/v1", QueueingInjectHandler(runtime, config).handle)
    app.router.add_get("/api/check-liveness/v1", check_liveness)
    app.router.add_get("/api-docs/openapi.json", serve_openapi)
    app.router.add_get(RAPIDOC_PATH, serve_rapidoc)
    if importlib.util.find_spec("kumocore.admin.routes") is not None:
        from kumocore.admin.routes import add_admin_routes

        add_admin_routes(app, runtime)
        if importlib.util.find_spec("kumocore.admin.openapi") is not None:
            from kumocore.admin.openapi import admin_openapi_paths

            add_openapi_paths(app, admin_openapi_paths())
        from kumocore.status.routes import add_status_page

        add_status_page(app, runtime)  # the live status page (/status), read-only
    return app


class HttpListener:
    """A running HTTP listener: ``address`` is where it listens, ``close()`` stops it."""

    def __init__(self, app: web.Application, runner: web.AppRunner,
                 server: asyncio.base_events.Server) -> None:
        self.app = app
        self.runner = runner
        self.server = server
        if not server.sockets:
            raise RuntimeError("the listener is not running")
        address = server.sockets[0].getsockname()
        self._address = (str(address[0]), int(address[1]))

    @property
    def guard(self) -> ConnectionGuard:
        """Connection counts and caps (``guard.stats()``)."""
        return self.app[GUARD_KEY]

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the real port when ``listen`` asked for port 0."""
        return self._address

    @property
    def url(self) -> str:
        host, port = self.address
        scheme = "https" if self.app[CONFIG_KEY].use_tls else "http"
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"

    async def close(self) -> None:
        """Stop accepting; in-flight requests get :data:`SHUTDOWN_GRACE` s to finish."""
        self.app[STATE_KEY]["closing"] = True
        self.server.close()
        await self.runner.cleanup()


async def start_http_listener(runtime: Runtime, config: HttpListenerConfig) -> HttpListener:
    """Bind and start one listener."""
    start = await prepare_http_listener(runtime, config)
    return await start()


async def prepare_http_listener(
    runtime: Runtime, config: HttpListenerConfig
) -> Callable[[], Awaitable[HttpListener]]:
    """Everything but the bind (the app, TLS context); the returned function binds it."""
    site = GuardedSite(config)
    app = make_app(runtime, config, site.guard)
    app[GUARD_KEY] = site.guard
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE,
        keepalive_timeout=config.keepalive_timeout,
        # Bodies are decoded by the request guard, once a request was let in, and only
        # up to request_body_limit (kumocore.http.encoding): never on arrival.
        auto_decompress=False)
    await runner.setup()
    site.attach(runner)

    async def start() -> HttpListener:
        server = await site.bind(reuse_port=runtime.reuse_port or None)
        listener = HttpListener(app, runner, server)
        if runtime.services is not None:  # its counts on /metrics
            runtime.services.metrics.http_guards.append((site.guard, config.listen))
        log.debug("HTTP listener started", address=listener.address, tls=config.use_tls)
        return listener

    return start
