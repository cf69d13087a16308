"""HTTP listeners of the services that answer only their trusted hosts.

``kumocore tsa serve`` (``tsa.start_http_listener`` or ``--listen``) and the proxy
server's ``proxy.start_http_listener`` serve a few endpoints to the listener's
``trusted_hosts`` and a JSON ``401`` to everyone else. Besides its own, each serves what
every KumoMTA service listener has: ``/api-docs/openapi.json`` (its routes),
``/rapidoc`` and ``POST /api/admin/set_diagnostic_log_filter/v1``. Requests pass the
same guard as ``kumo.start_http_listener``'s (:func:`kumocore.http.guard.make_request_guard`):
a browser on a trusted host cannot be made to post to them from another site, nor reach
them through DNS rebinding. The rebinding check (the ``Host`` must be an IP address,
``localhost`` or the listener's ``hostname``) applies to requests a browser sent: a
fleet's nodes may publish to the service by any DNS name, as they may to KumoMTA's.

Anyone may still connect, so they keep ``kumo.start_http_listener``'s connection limits
(:mod:`kumocore.http.binding`): at most ``max_connections`` clients,
``max_connections_per_peer`` from one peer, headers within ``header_timeout``, idle
connections closed after ``keepalive_timeout``, a client that stops reading its response
aborted after ``response_write_timeout``; a body over ``request_body_limit`` is a
``413``, one slower than ``request_body_timeout`` a ``408``.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kumocore.errors import ConfigError
from kumocore.http.auth import AUTH_KEY, AuthInfo
from kumocore.http.binding import GuardedSite
from kumocore.http.guard import make_connection_middleware, make_request_guard, untrusted_peer
from kumocore.http.rapidoc import RAPIDOC_PATH, RAPIDOC_PATHS, serve_rapidoc

if TYPE_CHECKING:
    from kumocore.config import HttpListenerConfig
    from kumocore.http.connections import ConnectionGuard

__all__ = ["SERVICE_LISTENER_OPTIONS", "ServiceListener", "ServicePolicyModule",
           "start_service_listener"]  # fmt: skip

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: What KumoMTA's services pass to their HTTP listeners (kumo-server-common's
#: HttpListenerParams): the part of ``kumo.start_http_listener``'s options they take.
SERVICE_LISTENER_OPTIONS = frozenset({
    "listen", "trusted_hosts", "hostname", "use_tls", "tls_certificate", "tls_private_key",
    "request_body_limit",
})  # fmt: skip


class ServicePolicyModule:
    """The shared part of a service's policy module (``require 'tsa'``, ``require
    'proxy'``): listeners are recorded by its init event, before the service starts."""

    #: The event that may call the module's functions (``tsa_init``, ``proxy_init``).
    init_event: str

    def __init__(self) -> None:
        #: Set once the service runs: the listeners are fixed by then.
        self.started = False

    def not_started(self, function: str) -> None:
        if self.started:
            raise ConfigError(f"{function}: call it from the {self.init_event} event; "
                              "the service is already running")  # fmt: skip

    def http_listener(self, options: dict[str, Any], function: str) -> HttpListenerConfig:
        """A ``start_http_listener``'s options checked: only KumoMTA's services' options."""
        from kumocore.config.http_listener import HttpListenerConfig

        self.not_started(function)
        for name in options:
            if name not in SERVICE_LISTENER_OPTIONS:
                known = ", ".join(sorted(SERVICE_LISTENER_OPTIONS))
                raise ConfigError(f"{function}: unknown option {name!r} (the listener of "
                                  f"this service takes {known})")  # fmt: skip
        return HttpListenerConfig.from_options(options, function=function)


#: Headers every current browser sends (``Origin`` on any POST, ``Sec-Fetch-*`` on every
#: request) and the services' own clients (KumoMTA's publishers, kumocore nodes) do not.
_BROWSER_HEADERS = ("Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode")


def _from_a_browser(request: web.Request) -> bool:
    return any(name in request.headers for name in _BROWSER_HEADERS)


def _trusted_only(config: HttpListenerConfig) -> Any:
    @web.middleware
    async def trusted_only(request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = untrusted_peer(config, request)
        if refusal is not None:
            return refusal
        if _from_a_browser(request):
            # Let in for its address: the request guard's DNS-rebinding check applies.
            request[AUTH_KEY] = AuthInfo(request.remote or "", trusted=True)
        return await handler(request)

    return trusted_only


class ServiceListener:
    """One started listener; :meth:`close` stops it and closes its connections."""

    def __init__(self, runner: web.AppRunner, server: asyncio.Server, guard: ConnectionGuard):
        self.runner = runner
        self.server = server
        self.guard = guard

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the real port when ``listen`` asked for port 0."""
        host, port = self.server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def close(self) -> None:
        self.server.close()
        await self.runner.cleanup()
        await self.server.wait_closed()


def _document(title: str, paths: Mapping[str, Any]) -> dict[str, Any]:
    from kumocore import __version__
    from kumocore.admin.node_ops import LOG_FILTER_PATH
    from kumocore.admin.node_ops_openapi import node_ops_openapi_paths
    from kumocore.http.openapi import PATHS, SCHEMAS

    common = {"/api-docs/openapi.json": PATHS["/api-docs/openapi.json"], **RAPIDOC_PATHS,
              LOG_FILTER_PATH: node_ops_openapi_paths()[LOG_FILTER_PATH]}  # fmt: skip
    return copy.deepcopy({
        "openapi": "3.0.3",
        "info": {"title": title, "version": __version__},
        "paths": {**paths, **common},
        "components": {"schemas": {"Error": SCHEMAS["Error"]}},
    })  # fmt: skip


def _add_common_routes(app: web.Application, document: dict[str, Any]) -> None:
    from kumocore.admin.node_ops import LOG_FILTER_PATH, set_log_filter

    async def openapi(_: web.Request) -> web.StreamResponse:
        return web.json_response(document)

    app.router.add_get("/api-docs/openapi.json", openapi)
    app.router.add_get(RAPIDOC_PATH, serve_rapidoc)
    app.router.add_post(LOG_FILTER_PATH, set_log_filter)


async def start_service_listener(
    config: HttpListenerConfig, add_routes: Callable[[web.Application], None], *,
    function: str, title: str, paths: Mapping[str, Any],
) -> ServiceListener:  # fmt: skip
    """Start one listener serving the routes ``add_routes`` puts on a new application,
    described by the OpenAPI ``paths`` in a document called ``title``; ``function`` names
    the caller in the error when the address cannot be bound."""
    site = GuardedSite(config)
    app = web.Application(
        middlewares=[make_connection_middleware(site.guard), _trusted_only(config),
                     make_request_guard(config)],
        client_max_size=config.request_body_limit,
    )
    add_routes(app)
    _add_common_routes(app, _document(title, paths))
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           keepalive_timeout=config.keepalive_timeout)  # fmt: skip
    await runner.setup()
    site.attach(runner)
    try:
        server = await site.bind()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"{function}: cannot listen on {config.listen}: "
                          f"{exc.strerror or exc}") from exc  # fmt: skip
    return ServiceListener(runner, server, site.guard)
