"""The listeners of a :class:`~kumocore.node.server.Server`: built first, bound after.

:meth:`ServerListeners.prepare_listeners` builds every ESMTP and HTTP listener short of
binding it (TLS contexts, apps); :meth:`ServerListeners.start_listeners` binds them, so the
workers of one node open their ports within moments of each other. A bind, TLS or file
error becomes one :class:`~kumocore.errors.ConfigError` line naming the listener
(``ESMTP listener 0.0.0.0:25: cannot bind: Address already in use``), so that
``kumocore serve`` exits with that line rather than a traceback (the server words a spool
that cannot open the same way, with :func:`_reason`).
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Protocol

import structlog

from kumocore.errors import ConfigError

if TYPE_CHECKING:
    from kumocore.node.runtime import Runtime

log = structlog.get_logger("kumocore.node.server")  # the same log as the server's


class Listener(Protocol):
    """A started listener (ESMTP or HTTP)."""

    @property
    def address(self) -> tuple[str, int]: ...

    async def close(self) -> None: ...


def _reason(exc: BaseException) -> str:
    """The operator-facing reason of a start-up failure, without the exception's class."""
    if isinstance(exc, OSError) and exc.errno:
        # uvloop's bind errors carry errno but a long sentence instead of strerror.
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{os.strerror(exc.errno)}{where}"
    return str(exc) or type(exc).__name__


@contextlib.contextmanager
def _startup_errors(what: str) -> Iterator[None]:
    """Turn a listener's bind/TLS/file failure into one :class:`ConfigError` line naming it."""
    try:
        yield
    except ConfigError:
        raise
    except (OSError, ssl.SSLError, ValueError) as exc:
        binding = isinstance(exc, OSError) and exc.errno in _BIND_ERRNOS
        verb = "cannot bind" if binding else "failed"
        raise ConfigError(f"{what}: {verb}: {_reason(exc)}") from exc


_BIND_ERRNOS = {98, 99, 13}  # EADDRINUSE, EADDRNOTAVAIL, EACCES (privileged port)


class ServerListeners:
    """The listener part of :class:`~kumocore.node.server.Server` (which sets the state)."""

    runtime: Runtime
    listeners: list[Listener]
    _unbound: list[tuple[str, Callable[[], Awaitable[Listener]]]] | None

    async def prepare_listeners(self) -> None:
        """Build every listener short of binding it: TLS contexts (a self-signed
        certificate is an RSA key generation) and apps, so that :meth:`start_listeners`
        only binds. Workers of one node then open their ports within moments of each
        other."""
        from kumocore.http.server import prepare_http_listener
        from kumocore.reception.smtp.server import prepare_esmtp_listener

        config = self.runtime.config
        unbound: list[tuple[str, Callable[[], Awaitable[Listener]]]] = []
        for esmtp in config.esmtp_listeners:
            what = f"ESMTP listener {esmtp.listen}"
            with _startup_errors(what):
                unbound.append((what, await prepare_esmtp_listener(self.runtime, esmtp)))
        for http in config.http_listeners:
            what = f"HTTP listener {http.listen}"
            with _startup_errors(what):
                unbound.append((what, await prepare_http_listener(self.runtime, http)))
        self._unbound = unbound

    async def start_listeners(self) -> None:
        """Bind and start the listeners (prepared first if :meth:`prepare_listeners` was
        not called)."""
        if self._unbound is None:
            await self.prepare_listeners()
        unbound, self._unbound = self._unbound or [], []
        for what, start in unbound:
            with _startup_errors(what):
                self.listeners.append(await start())
        for listener in self.listeners:
            host, port = listener.address[:2]
            log.info("listening", address=f"{host}:{port}", kind=type(listener).__name__)
