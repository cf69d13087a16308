"""One ``proxy.start_proxy_listener``: accepts clients and runs a session for each.

Each client gets KumoProxy's TCP keepalive, then (``use_tls``) a TLS handshake bounded by
``timeout`` — with the configured certificate, or a self-signed one for ``hostname`` —
then its :class:`~kumocore.proxy.session.Session`. A client beyond ``max_connections``
(kumocore's bound; KumoProxy has none) is closed as soon as it is accepted, before any
handshake. Closing the listener ends every session.

``max_connections`` is also lowered, when it must be, so that every listener's clients fit
the process's open-file limit (:func:`descriptor_cap`): past that limit ``accept`` fails
(asyncio then stops accepting for a second and logs each failure) and admitted clients
cannot open their destination's socket, so a few hundred idle clients would shut
everyone out.
"""

from __future__ import annotations

import asyncio
import resource
import ssl
from typing import Any

import structlog

from kumocore.errors import ConfigError
from kumocore.proxy.metrics import ListenerMetrics
from kumocore.proxy.options import ProxyListenerConfig
from kumocore.proxy.relay import CHUNK
from kumocore.proxy.session import (
    Authenticate,
    Session,
    SessionFailed,
    set_keepalive,
    socket_address,
)

log = structlog.get_logger("kumocore.proxy")

#: Descriptors kept for the rest of the process (policy files, logs, DNS), on top of
#: what the HTTP listeners may hold.
RESERVED_FDS = 64


def descriptor_cap(listeners: int, reserved: int) -> int | None:
    """Clients one of ``listeners`` proxy listeners may serve at once so that all fit the
    soft ``RLIMIT_NOFILE`` less ``reserved``: each holds two descriptors, its own and its
    destination's (or bound) socket. None when the limit is unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    return max(1, (soft - reserved) // (2 * max(1, listeners)))


class ProxyListener:
    def __init__(self, config: ProxyListenerConfig, authenticate: Authenticate,
                 fd_cap: int | None = None) -> None:  # fmt: skip
        self.config = config
        #: ``max_connections``, lowered to ``fd_cap`` (see :func:`descriptor_cap`).
        self.max_connections = min(config.max_connections, fd_cap or config.max_connections)
        self.authenticate = authenticate
        self.metrics = ListenerMetrics(config.listen)
        self.address: tuple[str, int] | None = None
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[Any]] = set()
        self._tls: ssl.SSLContext | None = None

    async def start(self) -> None:
        from kumocore.config.cidr import split_host_port
        from kumocore.reception.tls import server_context

        config = self.config
        if config.use_tls:
            self._tls = server_context(config.hostname, config.tls_certificate,
                                       config.tls_private_key)  # fmt: skip
        host, port = split_host_port(config.listen)
        try:
            self._server = await asyncio.start_server(self._accepted, host or None, port,
                                                      limit=CHUNK)  # fmt: skip
        except OSError as exc:
            raise ConfigError(f"proxy.start_proxy_listener: cannot listen on {config.listen}: "
                              f"{exc.strerror or exc}") from exc  # fmt: skip
        self.address = self._server.sockets[0].getsockname()[:2]
        # The label is the bound address, as KumoProxy's (it differs from `listen` for :0).
        self.metrics.listener = socket_address(self.address)
        log.info("proxy listener on", address=self.metrics.listener, tls=config.use_tls)
        if self.max_connections < config.max_connections:
            log.warning("proxy max_connections lowered to fit the open-file limit (raise "
                        "it with ulimit -n or LimitNOFILE)", address=self.metrics.listener,
                        configured=config.max_connections,
                        effective=self.max_connections)  # fmt: skip

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    @property
    def active(self) -> int:
        return self.metrics.active

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        metrics = self.metrics
        if metrics.active >= self.max_connections:
            metrics.add("proxy_connections_refused")
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        metrics.active += 1
        metrics.add("proxy_connections_accepted")
        # None when the client reset the connection before asyncio asked its address.
        peername = writer.get_extra_info("peername")
        peer = socket_address(peername) if peername else "an unknown peer"
        try:
            await self._serve(reader, writer, peer)
            metrics.add("proxy_connections_completed")
        except (SessionFailed, OSError, ssl.SSLError, ConnectionError) as exc:
            metrics.add("proxy_connections_failed")
            log.info("proxy session failed", peer=peer, error=str(exc) or type(exc).__name__)
        except Exception:
            metrics.add("proxy_connections_failed")
            log.exception("proxy session error", peer=peer)
        finally:
            metrics.active -= 1
            self._sessions.discard(task)
            await _shut(writer, self.config.timeout)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     peer: str) -> None:  # fmt: skip
        sock = writer.get_extra_info("socket")
        set_keepalive(sock, self.config.tcp_keepalive)
        local = socket_address(sock.getsockname())
        if self._tls is not None:
            try:
                await writer.start_tls(self._tls, ssl_handshake_timeout=self.config.timeout)
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                self.metrics.add("proxy_tls_handshake_failures")
                raise SessionFailed(f"failed TLS handshake from {peer}: {exc}") from exc
        session = Session((reader, writer), self.config, self.metrics, self.authenticate,
                          peer, local)  # fmt: skip
        await session.run()


async def _shut(writer: asyncio.StreamWriter, timeout: float) -> None:
    """Close the client's socket once its last reply is sent, but never wait on a client
    that stops reading for longer than ``timeout``."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), timeout)
    except (TimeoutError, OSError, ssl.SSLError):
        writer.transport.abort()
