"""Starting and stopping ESMTP listeners (``kumo.start_esmtp_listener``).

Each listener is an asyncio server in kumocore's own event loop
(``loop.create_server(lambda: EsmtpSession(...))``) — no aiosmtpd ``Controller`` and no
threads. Several listeners may run at once; each keeps the set of its live sessions, which
is how ``max_connections`` is enforced (the connection over the limit gets
``421 4.3.2 <host> too many concurrent sessions. Try later``) and how closing works:
stop accepting, tell idle sessions ``421 4.3.2 <host> shutting down``, give busy ones
time to finish the command they are in (so a message whose DATA was complete is spooled
and answered), then cut what is left.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast

import structlog

from kumocore.errors import ConfigError
from kumocore.reception.connection_rates import ConnectionRates
from kumocore.reception.smtp.aiosmtpd_contract import check_aiosmtpd
from kumocore.reception.smtp.commands import COMMANDS
from kumocore.reception.smtp.limits import AuthFailures, PeerCounts
from kumocore.reception.smtp.session import EsmtpSession
from kumocore.reception.smtp.tls_contexts import check_block_certificates
from kumocore.reception.tls import server_context

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kumocore.config import EsmtpListenerConfig
    from kumocore.node.runtime import Runtime
    from kumocore.reception.smtp.session import CommandHandler

log = structlog.get_logger("kumocore.reception.smtp")

# aiosmtpd logs every connect and disconnect at INFO on "mail.log"; kumocore has its own
# diagnostics, so that logger is quieted unless the operator configured it explicitly.
_AIOSMTPD_LOG = logging.getLogger("mail.log")

__all__ = ["EsmtpListener", "start_esmtp_listener"]


class EsmtpListener:
    """A running ESMTP listener: ``address`` is where it listens, ``close()`` stops it."""

    def __init__(
        self, runtime: Runtime, config: EsmtpListenerConfig, tls_context: ssl.SSLContext | None
    ) -> None:
        self.runtime = runtime
        self.config = config
        self.tls_context = tls_context
        self.commands: Mapping[str, CommandHandler] = COMMANDS
        self.sessions: set[EsmtpSession] = set()
        self.peers = PeerCounts()
        self.connection_rates = ConnectionRates()  # max_connection_rate_per_peer
        self.auth_failures = AuthFailures(
            config.max_auth_failures_per_peer, config.auth_failure_window)
        self.closing = False
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None

    async def start(self) -> None:
        host, port = self.config.listen_host_port()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: EsmtpSession(self), host, port, reuse_address=True, backlog=1024,
            reuse_port=self.runtime.reuse_port or None)
        sockname = self._server.sockets[0].getsockname()
        self._address = (str(sockname[0]), int(sockname[1]))

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the real port when ``listen`` asked for port 0."""
        if self._address is None:
            raise RuntimeError("the listener was never started")
        return self._address

    async def close(self, timeout: float = 5.0) -> None:
        """Stop accepting; let sessions finish their current command for ``timeout`` s."""
        if self.closing:
            return
        self.closing = True
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.shutdown()
        pending = [s._handler_coroutine for s in self.sessions if s._handler_coroutine]
        if pending:
            _, still_running = await asyncio.wait(pending, timeout=timeout)
            for session in list(self.sessions):
                transport = cast(asyncio.Transport | None, session.transport)
                if transport is not None:
                    transport.abort()
            if still_running:
                log.warning("closed SMTP sessions still busy", count=len(still_running))
        if self._server is not None:
            await self._server.wait_closed()

    def __repr__(self) -> str:
        return f"<EsmtpListener {self.config.listen} sessions={len(self.sessions)}>"


def check_supported(config: EsmtpListenerConfig) -> None:
    """Refuse options kumocore cannot honour where ignoring them would be unsafe, even
    with ``--allow-unsupported``."""
    if config.tls_required_client_ca is not None:
        raise ConfigError("kumo.start_esmtp_listener: tls_required_client_ca is not "
                          "supported by kumocore")
    # The options kumocore ignores are refused when the policy sets them (see
    # EsmtpListenerConfig's unsupported list), or listed once with --allow-unsupported.


async def start_esmtp_listener(runtime: Runtime, config: EsmtpListenerConfig) -> EsmtpListener:
    """Bind and start one listener; a self-signed certificate is made when none is set."""
    start = await prepare_esmtp_listener(runtime, config)
    return await start()


async def prepare_esmtp_listener(
    runtime: Runtime, config: EsmtpListenerConfig
) -> Callable[[], Awaitable[EsmtpListener]]:
    """Everything but the bind (TLS context, a self-signed certificate's key generation);
    the returned function binds and starts the listener."""
    check_supported(config)
    # kumocore relies on aiosmtpd internals (kumocore.reception.smtp.aiosmtpd_contract)
    check_aiosmtpd()
    if _AIOSMTPD_LOG.level == logging.NOTSET:
        _AIOSMTPD_LOG.setLevel(logging.WARNING)
    tls_context = server_context(config.hostname, config.tls_certificate, config.tls_private_key)
    # Certificates of peer/via blocks: a file that cannot be loaded fails the start, not
    # a client's STARTTLS later (kumocore.reception.smtp.tls_contexts).
    await check_block_certificates(config)
    listener = EsmtpListener(runtime, config, tls_context)

    async def start() -> EsmtpListener:
        await listener.start()
        log.debug("ESMTP listener started", address=listener.address)
        return listener

    return start
