"""HTTP listeners of the services that answer only their trusted hosts.

``kumocore tsa serve`` (``tsa.start_http_listener`` or ``--listen``) and the proxy
server's ``proxy.start_http_listener`` serve a few endpoints to the listener's
``trusted_hosts`` and a JSON ``401`` to everyone else. Anyone may still connect, so they
keep ``kumo.start_http_listener``'s connection limits (:mod:`kumocore.http.binding`): at
most ``max_connections`` clients, ``max_connections_per_peer`` from one peer, headers
within ``header_timeout``, idle connections closed after ``keepalive_timeout``. A body over
``request_body_limit`` is a JSON ``413``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kumocore.errors import ConfigError
from kumocore.http.binding import GuardedSite
from kumocore.http.guard import json_error, make_connection_middleware, untrusted_peer

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
        from kumocore.config.listeners import HttpListenerConfig

        self.not_started(function)
        for name in options:
            if name not in SERVICE_LISTENER_OPTIONS:
                known = ", ".join(sorted(SERVICE_LISTENER_OPTIONS))
                raise ConfigError(f"{function}: unknown option {name!r} (the listener of "
                                  f"this service takes {known})")  # fmt: skip
        return HttpListenerConfig.from_options(options, function=function)


def _trusted_only(config: HttpListenerConfig) -> Any:
    @web.middleware
    async def trusted_only(request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = untrusted_peer(config, request)
        if refusal is not None:
            return refusal
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return json_error(413, "request body larger than request_body_limit "
                                   f"({config.request_body_limit} bytes)")  # fmt: skip

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


async def start_service_listener(
    config: HttpListenerConfig, add_routes: Callable[[web.Application], None], *, function: str
) -> ServiceListener:
    """Start one listener serving the routes ``add_routes`` puts on a new application;
    ``function`` names the caller in the error when the address cannot be bound."""
    site = GuardedSite(config)
    app = web.Application(
        middlewares=[make_connection_middleware(site.guard), _trusted_only(config)],
        client_max_size=config.request_body_limit,
    )
    add_routes(app)
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
