"""Per-connection TLS certificates: the SSL context a connection's STARTTLS uses.

A listener's ``peer``/``via`` blocks and the ``smtp_server_get_dynamic_parameters``
answer may name another ``tls_certificate``/``tls_private_key`` (or only another
``hostname``, whose self-signed certificate then differs): KumoMTA's IP-based virtual
hosting. STARTTLS must then present that certificate, not the listener's.

What goes into a context (:func:`kumocore.reception.tls.server_context`) is the key pair,
or the hostname when no pair is set (the self-signed case); the protocol floor and the
options are the same for every listener, ``tls_required_client_ca`` is refused and
``tls_handshake_timeout`` is a per-connection deadline outside the context. So
:func:`context_key` is the certificate and key sources and, only without them, the hostname.

A connection whose key is the listener's uses the listener's context: the common case
costs an identity test (its config *is* the listener's) or, after overrides, one tuple
comparison, and nothing at all for a connection that never says STARTTLS. Other contexts
are built in a worker thread (reading files, parsing keys, generating a self-signed key)
and kept in one process-wide cache, as KumoMTA does: at most :data:`MAX_CONTEXTS`, least
recently used first out, each for :data:`CONTEXT_TTL` seconds so that a renewed
certificate file is picked up (KumoMTA keeps its entries five minutes too). Concurrent
connections needing the same new context wait for one build. The listener's own context,
loaded at start, is read again every :data:`CONTEXT_TTL` seconds too
(:mod:`kumocore.reception.tls_reload`), in the background, the last good one serving
meanwhile; so is a ``peer``/``via`` block's whose certificate or key came from HashiCorp
Vault (:func:`kumocore.config.listener_vault.from_vault`): rebuilding it here would only
parse the secret read at start again, where the listener's reload reads Vault again
without a connection waiting for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Protocol

import structlog

from kumocore.config.listener_vault import from_vault
from kumocore.errors import ConfigError
from kumocore.reception import tls_reload
from kumocore.reception.tls import load_key_source, server_context

if TYPE_CHECKING:
    import ssl

    from kumocore.config import EsmtpListenerConfig

log = structlog.get_logger("kumocore.reception.smtp")

__all__ = [
    "CONTEXTS",
    "ContextCache",
    "check_block_certificates",
    "context_key",
    "needs_own_context",
    "starttls_context",
]

#: Contexts kept besides the listeners' own (KumoMTA keeps 128 acceptor configs).
MAX_CONTEXTS = 64
#: Seconds a cached context is used before its files are read again.
CONTEXT_TTL = tls_reload.RELOAD_AFTER
#: The options naming files a context is built from.
KEY_OPTIONS = ("tls_certificate", "tls_private_key")

ContextKey = tuple[Hashable, Hashable, str | None]


def context_key(config: EsmtpListenerConfig) -> ContextKey:
    """What a context for ``config`` is built from (the module docstring says why)."""
    cert, key = config.tls_certificate, config.tls_private_key
    hostname = config.hostname if cert is None and key is None else None
    return tls_reload.source_id(cert), tls_reload.source_id(key), hostname


def needs_own_context(config: EsmtpListenerConfig, listener: EsmtpListenerConfig) -> bool:
    """Whether a connection served with ``config`` needs a context other than that of
    the listener configured with ``listener``."""
    return config is not listener and context_key(config) != context_key(listener)


def _build(config: EsmtpListenerConfig) -> ssl.SSLContext:
    return server_context(config.hostname, config.tls_certificate, config.tls_private_key)


class ContextCache:
    """Contexts by :func:`context_key`: at most ``max_entries``, each for ``ttl`` s."""

    def __init__(
        self,
        max_entries: int = MAX_CONTEXTS,
        ttl: float = CONTEXT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[ContextKey, tuple[float, ssl.SSLContext]] = OrderedDict()
        self._building: dict[ContextKey, asyncio.Task[ssl.SSLContext]] = {}
        self.builds = 0  # contexts built so far (tests and diagnostics)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, config: EsmtpListenerConfig) -> bool:
        entry = self._entries.get(context_key(config))
        return entry is not None and entry[0] > self._clock()

    async def get(self, config: EsmtpListenerConfig) -> ssl.SSLContext:
        """The context for ``config``; :class:`ConfigError` naming the file that cannot be
        loaded (a failure is not cached: the next connection tries again)."""
        key = context_key(config)
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            self._entries.move_to_end(key)
            return entry[1]
        task = self._building.get(key)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.create_task(self._load(key, config))
            # Every waiter may be gone (clients hung up): the failure is still consumed.
            task.add_done_callback(_consume)
            self._building[key] = task
        return await asyncio.shield(task)

    async def _load(self, key: ContextKey, config: EsmtpListenerConfig) -> ssl.SSLContext:
        try:
            context = await asyncio.to_thread(_build, config)
        finally:
            if self._building.get(key) is asyncio.current_task():  # not a newer build's
                del self._building[key]
        self.builds += 1
        self._entries[key] = (self._clock() + self.ttl, context)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return context


def _consume(task: asyncio.Task[ssl.SSLContext]) -> None:
    if not task.cancelled():
        task.exception()


#: The process-wide cache (listeners share certificates, as KumoMTA's does).
CONTEXTS = ContextCache()


class _HasConfig(Protocol):
    @property
    def config(self) -> EsmtpListenerConfig: ...


class TlsSession(Protocol):
    """What :func:`starttls_context` reads of a session (structural)."""

    tls_context: ssl.SSLContext | None

    @property
    def config(self) -> EsmtpListenerConfig: ...
    @property
    def listener(self) -> _HasConfig: ...
    @property
    def peer_address(self) -> str: ...

    async def technical_difficulties(self) -> None: ...


async def starttls_context(session: TlsSession) -> ssl.SSLContext | None:
    """The context for this session's STARTTLS: the listener's unless the session's
    parameters name other TLS files or hostname. None when those cannot be loaded: the
    reason is logged and the client got ``421 4.3.0`` (nothing was promised yet)."""
    base = session.tls_context
    if base is None:
        return None
    listener = session.listener.config
    if not needs_own_context(session.config, listener):
        return tls_reload.LISTENER_CONTEXTS.get(listener, base)
    config = session.config
    try:
        if from_vault(config.tls_certificate) or from_vault(config.tls_private_key):
            return await tls_reload.LISTENER_CONTEXTS.get_or_load(
                config, lambda: CONTEXTS.get(config)
            )
        return await CONTEXTS.get(config)
    except ConfigError as exc:
        log.error(
            "STARTTLS certificate cannot be loaded; connection refused",
            peer=session.peer_address,
            error=str(exc),
        )
        await session.technical_difficulties()
        return None


async def check_block_certificates(config: EsmtpListenerConfig) -> None:
    """At load: every file a static ``peer``/``via`` block names must be loadable, a
    :class:`ConfigError` names the block and the file. A block naming both files gets
    its context built (and cached; kept for the periodic re-read when a secret came from
    Vault); one naming a single file has that file read, since its partner may come from
    another block matching the same connection."""
    for kind, cidr, overrides in config.override_blocks():
        named = [name for name in KEY_OPTIONS if overrides.get(name) is not None]
        try:
            if len(named) == len(KEY_OPTIONS):
                block = dataclasses.replace(config, **overrides)
                context = await CONTEXTS.get(block)
                if any(from_vault(overrides[name]) for name in KEY_OPTIONS):
                    # Its Vault secret's five minutes start now, as the listener's own.
                    tls_reload.LISTENER_CONTEXTS.get(block, context)
            elif named:
                [name] = named
                await asyncio.to_thread(load_key_source, overrides[name], key=name)
        except ConfigError as exc:
            raise ConfigError(f'{config.options_for} {kind}["{cidr}"]: {exc}') from None
