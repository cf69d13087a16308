"""A listener's own certificate, read again while the listener runs.

KumoMTA keeps the TLS acceptors it builds for five minutes, so a renewed certificate file
(a certbot run) is served without a restart. kumocore's listeners load theirs at start;
:class:`ListenerContexts` reads the files again every :data:`RELOAD_AFTER` seconds:

* in the background: the connection that finds a read due is served at once with the
  current context, and connections arriving meanwhile start no other read;
* keeping the last good context when the files cannot be read (half-written by the
  renewal, removed), logged, and tried again after another period;
* never for a self-signed certificate (no files configured): a new key would only change
  the certificate;
* a certificate or key kept in HashiCorp Vault is read from Vault again
  (:func:`kumocore.config.listener_vault.refreshed`).

An ESMTP listener's ``peer``/``via`` block whose certificate or key came from Vault is kept
here too (:meth:`ListenerContexts.get_or_load`, asked by STARTTLS), so its secret is read
again on the same schedule, the same way: one read per secret and block pair per period,
in the background, however many connections arrive.

ESMTP's STARTTLS asks :data:`LISTENER_CONTEXTS` for the listener's context
(:mod:`kumocore.reception.smtp.tls_contexts`); an HTTPS listener, whose context the event
loop holds, gets the current one through the context's server-name callback
(:func:`serve_renewed`), which the handshake runs for every client (with or without SNI).
One entry per listener configuration (and Vault-backed block pair): bounded by the
listeners (and blocks) a policy starts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from kumocore.config.listener_vault import refreshed
from kumocore.errors import ConfigError
from kumocore.reception.tls import server_context

if TYPE_CHECKING:
    import ssl

log = structlog.get_logger("kumocore.reception.tls")

__all__ = [
    "LISTENER_CONTEXTS",
    "RELOAD_AFTER",
    "ListenerContexts",
    "TlsFiles",
    "serve_renewed",
    "source_id",
]

#: Seconds a listener's certificate is served before its files are read again (KumoMTA's
#: acceptor cache keeps its entries five minutes).
RELOAD_AFTER = 300.0

KeySource = str | Mapping[str, Any] | None


class TlsFiles(Protocol):
    """What a listener's configuration says about its certificate (ESMTP and HTTP)."""

    @property
    def hostname(self) -> str: ...
    @property
    def tls_certificate(self) -> KeySource: ...
    @property
    def tls_private_key(self) -> KeySource: ...


def source_id(source: KeySource) -> Hashable:
    """A key source as a hashable key (for the listener and per-connection caches)."""
    # A key source is a file name or a table such as {key_data = "..."}: tables are not
    # hashable, their sorted items are.
    if source is None or isinstance(source, str):
        return source
    return tuple(sorted((str(k), repr(v)) for k, v in source.items()))


class ListenerContexts:
    """The listeners' current contexts (see the module docstring)."""

    def __init__(self, ttl: float = RELOAD_AFTER,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.ttl = ttl
        self._clock = clock
        self._current: dict[Hashable, tuple[float, ssl.SSLContext]] = {}
        self._reloads: set[asyncio.Task[None]] = set()
        self.reloads = 0  # files read again so far (tests and diagnostics)

    def get(self, config: TlsFiles, loaded: ssl.SSLContext) -> ssl.SSLContext:
        """The context to serve for the listener configured with ``config``, whose
        start-up context is ``loaded``; starts a background read when one is due."""
        if config.tls_certificate is None and config.tls_private_key is None:
            return loaded
        key, now = _key(config), self._clock()
        entry = self._current.get(key)
        if entry is None:
            entry = self._current[key] = (now + self.ttl, loaded)
        elif entry[0] <= now:
            self._current[key] = (now + self.ttl, entry[1])  # one read at a time
            task = asyncio.get_running_loop().create_task(self._reload(key, config))
            self._reloads.add(task)
            task.add_done_callback(self._reloads.discard)
        return entry[1]

    async def get_or_load(
        self, config: TlsFiles, load: Callable[[], Awaitable[ssl.SSLContext]]
    ) -> ssl.SSLContext:
        """As :meth:`get`, ``load`` giving the first context (a ``peer``/``via`` block's,
        built by the per-connection cache); later calls never call it again."""
        entry = self._current.get(_key(config))
        return self.get(config, entry[1] if entry is not None else await load())

    async def _reload(self, key: Hashable, config: TlsFiles) -> None:
        try:
            # A certificate or key kept in HashiCorp Vault is read again too (on the loop:
            # an aiohttp request), as KumoMTA's acceptor cache does when its entry expires.
            certificate = await refreshed(config.tls_certificate, "tls_certificate")
            private_key = await refreshed(config.tls_private_key, "tls_private_key")
            context = await asyncio.to_thread(
                server_context, config.hostname, certificate, private_key
            )
        except ConfigError as exc:
            log.error("listener certificate cannot be read again; the one loaded before "
                      "is still served", hostname=config.hostname, error=str(exc))  # fmt: skip
            return
        self.reloads += 1
        self._current[key] = (self._clock() + self.ttl, context)


def _key(config: TlsFiles) -> Hashable:
    return source_id(config.tls_certificate), source_id(config.tls_private_key)


#: The process-wide listeners' contexts.
LISTENER_CONTEXTS = ListenerContexts()


def serve_renewed(context: ssl.SSLContext, config: TlsFiles) -> None:
    """Make the HTTPS listener serving ``context`` (loaded from ``config`` at start)
    present the current certificate: each handshake switches to the latest context."""
    if config.tls_certificate is None and config.tls_private_key is None:
        return  # self-signed: never rebuilt

    def current(connection: ssl.SSLObject, _name: str | None, _context: ssl.SSLContext) -> None:
        renewed = LISTENER_CONTEXTS.get(config, context)
        if renewed is not context:
            connection.context = renewed

    context.sni_callback = current
