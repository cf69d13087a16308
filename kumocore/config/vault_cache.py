"""Secrets read from HashiCorp Vault, kept a few minutes: one read at a time per secret.

Egress paths (:mod:`kumocore.config.egress_vault`) and the certificates a policy's
``smtp_server_get_dynamic_parameters`` answer names (:mod:`kumocore.config.listener_vault`)
ask for the same secret over and over (every path refresh, every connection). A
:class:`SecretCache` answers from memory for ``ttl`` seconds after a read, and callers
arriving while a read is under way wait for that one read: a thousand connections make one
request to Vault. A failed read is not kept (the next caller tries again) and raises the
:class:`~kumocore.errors.ConfigError` of :func:`~kumocore.config.vault.read_vault_secret`
(mount, path, status; never the token) to every caller that waited for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kumocore.config.vault import (
    VaultSource,
    is_vault_source,
    parse_vault_source,
    read_vault_secret,
)

ConfigT = TypeVar("ConfigT")

__all__ = ["DEFAULT_MAX_SECRETS", "DEFAULT_TTL", "SecretCache", "inline_vault_fields"]

#: Seconds a secret is used before it is read again (KumoMTA's TLS and connection caches
#: keep their entries five minutes).
DEFAULT_TTL = 300.0
#: Secrets kept at once by default: the oldest go first past this.
DEFAULT_MAX_SECRETS = 4096


class SecretCache:
    """Secrets by Vault source, each for ``ttl`` seconds, ``max_entries`` at most."""

    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_SECRETS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._cache: dict[VaultSource, tuple[float, bytes]] = {}
        self._reading: dict[VaultSource, asyncio.Future[bytes]] = {}
        self.reads = 0  # requests made to Vault so far (tests and diagnostics)

    def __len__(self) -> int:
        return len(self._cache)

    async def get(self, source: VaultSource, who: str) -> bytes:
        """The secret ``source`` names, from memory when read in the last ``ttl`` s;
        errors name ``who``."""
        cached = self._cache.get(source)
        if cached is not None and self.clock() - cached[0] < self.ttl:
            return cached[1]
        pending = self._reading.get(source)
        if pending is not None and pending.get_loop() is asyncio.get_running_loop():
            return await asyncio.shield(pending)  # another caller asked first: one read
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._reading[source] = future
        try:
            self.reads += 1
            data = await read_vault_secret(source, who)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            if self._reading.get(source) is future:
                del self._reading[source]
        future.set_result(data)
        self._remember(source, data)
        return data

    def _remember(self, source: VaultSource, data: bytes) -> None:
        self._cache.pop(source, None)
        if len(self._cache) >= self.max_entries:
            del self._cache[next(iter(self._cache))]
        self._cache[source] = (self.clock(), data)

    def forget(self) -> None:
        """Drop every remembered secret (tests; a policy reload keeps them)."""
        self._cache.clear()


async def inline_vault_fields(
    config: ConfigT, fields: Sequence[str], cache: SecretCache, who: str
) -> ConfigT:
    """``config`` (a frozen configuration) with each of ``fields`` that names a Vault key
    source replaced by ``{ key_data = <secret> }`` read through ``cache``; ``config``
    itself when none does. Errors name ``who``, the field, mount, path and status."""
    changes: dict[str, Any] = {}
    for name in fields:
        source = getattr(config, name, None)
        if is_vault_source(source):
            where = f"{who}: {name}"
            changes[name] = {"key_data": await cache.get(parse_vault_source(source, where), where)}
    return dataclasses.replace(config, **changes) if changes else config  # type: ignore[type-var]
