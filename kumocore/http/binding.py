"""What sits under aiohttp in every kumocore HTTP listener: the connection guard, the TLS
context and the bound socket.

``kumo.start_http_listener`` (:mod:`kumocore.http.server`) and the trusted-hosts services
(:mod:`kumocore.http.service`: ``kumocore tsa serve``, the proxy server's
``proxy.start_http_listener``) start the same way, so that each has the listener's
connection caps and deadlines (:class:`~kumocore.http.connections.ConnectionGuard`) and
serves a renewed certificate without a restart. A listener that only answers its trusted
hosts still accepts anyone's connection: without the guard a peer that connects and sends
nothing would hold a descriptor for ever.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from kumocore.http.connections import ConnectionGuard, connection_cap
from kumocore.reception.tls import server_context
from kumocore.reception.tls_reload import serve_renewed

if TYPE_CHECKING:
    from aiohttp import web

    from kumocore.config import HttpListenerConfig

log = structlog.get_logger("kumocore.http")

__all__ = ["GuardedSite", "tls_context"]


def tls_context(config: HttpListenerConfig) -> ssl.SSLContext | None:
    """The listener's HTTPS context (a self-signed certificate when none is configured),
    switching to a renewed certificate at the next handshake; None without ``use_tls``."""
    if not config.use_tls:
        return None
    context = server_context(config.hostname, config.tls_certificate, config.tls_private_key)
    serve_renewed(context, config)
    return context


class GuardedSite:
    """One listener's guard, TLS context and (after :meth:`bind`) server.

    The guard wraps aiohttp's protocol, so the socket is bound here rather than by an
    aiohttp site: :meth:`attach` hands it the runner's protocol factory first.
    """

    def __init__(self, config: HttpListenerConfig) -> None:
        self.config = config
        self._factory: list[Callable[[], asyncio.Protocol]] = []
        cap = connection_cap(config.max_connections)
        if cap < config.max_connections:
            log.warning("HTTP max_connections lowered to half the open-file limit, keeping "
                        "descriptors for the rest of the process",
                        configured=config.max_connections, effective=cap,
                        listen=config.listen)  # fmt: skip
        self.ssl_context = tls_context(config)
        # The guard starts TLS once it admitted a connection (see kumocore.http.connections).
        self.guard = ConnectionGuard(
            lambda: self._factory[0](), max_connections=cap,
            max_per_peer=config.max_connections_per_peer,
            header_timeout=config.header_timeout, keepalive_timeout=config.keepalive_timeout,
            response_write_timeout=config.response_write_timeout,
            trusted=config.trusted_hosts.contains, tls=self.ssl_context,
            rate=config.max_connection_rate_per_peer,
        )  # fmt: skip

    def attach(self, runner: web.AppRunner) -> None:
        """Serve ``runner``'s application (call after ``runner.setup()``)."""
        assert runner.server is not None, "runner.setup() first"
        self._factory.append(runner.server)

    async def bind(self, *, reuse_port: bool | None = None) -> asyncio.Server:
        """Listen on the configured address; ``OSError`` when it cannot."""
        host, port = self.config.listen_host_port()
        return await asyncio.get_running_loop().create_server(
            self.guard, host or None, port, reuse_address=True,
            reuse_port=reuse_port, backlog=128, family=socket.AF_UNSPEC,
        )  # fmt: skip
