"""Egress secrets kept in HashiCorp Vault: the path's ``smtp_auth_plain_password``,
``tls_certificate`` and ``tls_private_key``, the source's ``socks5_proxy_password``.

The SMTP client reads these synchronously while it opens a connection, where it cannot
wait for Vault. So they are read here, on the event loop, when routing asks the policy
for the path's (or source's) configuration, and the configuration the client sees holds
the secret as ``{ key_data = ... }``: a connection never waits for Vault. Routing asks
again whenever the configuration is due for a refresh; a secret read in the last
:data:`SECRET_TTL` seconds is taken from memory (one read at a time per secret, whatever
the number of paths asking), so a Vault outage costs nothing until it expires, and a
rotated password is in use within that time. A failed read raises the
:class:`~kumocore.errors.ConfigError` of :func:`~kumocore.config.vault.read_vault_secret`
(mount, path and status, never the token): routing then defers the messages with it,
as for any configuration error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, TypeVar

from kumocore.config.vault import (
    VaultSource,
    is_vault_source,
    parse_vault_source,
    read_vault_secret,
)

__all__ = ["SECRET_TTL", "forget_secrets", "read_egress_vault_sources"]

#: Seconds a secret read from Vault is used before it is read again (KumoMTA's TLS and
#: connection caches keep theirs five minutes too).
SECRET_TTL = 300.0
#: Secrets kept at once: one per distinct Vault source a policy names (bounded by it);
#: the oldest go first past this.
MAX_SECRETS = 4096

_FIELDS = ("smtp_auth_plain_password", "tls_certificate", "tls_private_key",
           "socks5_proxy_password")  # fmt: skip

ConfigT = TypeVar("ConfigT")

_cache: dict[VaultSource, tuple[float, bytes]] = {}
_reading: dict[VaultSource, asyncio.Future[bytes]] = {}


async def read_egress_vault_sources(config: ConfigT, who: str) -> ConfigT:
    """``config`` (an egress path's or source's configuration) with every Vault key
    source replaced by ``{ key_data = <secret> }``; ``config`` itself when it has none."""
    changes: dict[str, Any] = {}
    for name in _FIELDS:
        source = getattr(config, name, None)
        if is_vault_source(source):
            where = f"{who}: {name}"
            changes[name] = {"key_data": await _secret(parse_vault_source(source, where), where)}
    return dataclasses.replace(config, **changes) if changes else config  # type: ignore[type-var]


async def _secret(source: VaultSource, who: str) -> bytes:
    cached = _cache.get(source)
    if cached is not None and time.monotonic() - cached[0] < SECRET_TTL:
        return cached[1]
    pending = _reading.get(source)
    if pending is not None:  # another path asked first: one read for both
        return await asyncio.shield(pending)
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    _reading[source] = future
    try:
        data = await read_vault_secret(source, who)
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: nobody else may be waiting
        raise
    finally:
        _reading.pop(source, None)
    future.set_result(data)
    _remember(source, data)
    return data


def _remember(source: VaultSource, data: bytes) -> None:
    _cache.pop(source, None)
    if len(_cache) >= MAX_SECRETS:
        del _cache[next(iter(_cache))]
    _cache[source] = (time.monotonic(), data)


def forget_secrets() -> None:
    """Drop every remembered secret (tests; a policy reload keeps them)."""
    _cache.clear()
