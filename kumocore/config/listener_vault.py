"""Listener certificates and keys kept in HashiCorp Vault, read when the policy defines
the listener.

``kumo.start_esmtp_listener`` and ``kumo.start_http_listener`` take KumoMTA's key sources
for ``tls_certificate`` and ``tls_private_key`` (and so do an ESMTP listener's ``peer`` and
``via`` blocks). The TLS code builds its contexts synchronously, at start and again when
the files are due to be re-read, so a Vault source is read here, on the event loop, when
the policy's ``init`` defines the listener (the function gives Lua an awaitable): the
listener then holds the PEM text as ``{ key_data = ... }``. As KumoMTA reads a secret again
when its TLS acceptor cache entry (five minutes) expires, the listener's periodic
certificate reload (:mod:`kumocore.reception.tls_reload`) asks :func:`refreshed` for each
source, which reads a Vault one again: a certificate renewed in Vault is served without a
restart. A ``peer``/``via`` block's Vault certificate is read again the same way, on the
same schedule, when STARTTLS serves it (:func:`from_vault` tells which ones).

A ``tls_certificate``/``tls_private_key`` in Vault returned by
``smtp_server_get_dynamic_parameters`` is read right after the event returns, before the
greeting, by :func:`read_connection_vault_sources`, through :data:`CONNECTION_SECRETS`
(:class:`~kumocore.config.vault_cache.SecretCache`): kept five minutes, one read at a time
per secret, so a thousand connections make one request to Vault.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from kumocore.config.vault import is_vault_source, read_vault_secret
from kumocore.config.vault_cache import SecretCache, inline_vault_fields

__all__ = [
    "CONNECTION_SECRETS",
    "from_vault",
    "has_vault_sources",
    "read_connection_vault_sources",
    "read_listener_vault_sources",
    "refreshed",
]

_FIELDS = ("tls_certificate", "tls_private_key")

ConfigT = TypeVar("ConfigT")

#: Which Vault source each inlined secret came from (by its data), so that a reload can
#: read it again: one entry per secret a policy's listeners name, plus one per renewal,
#: least recently read first; past :data:`MAX_ORIGINS` the oldest (a secret renewed
#: since, which nothing holds any more) go.
_ORIGINS: dict[bytes, Mapping[str, Any]] = {}
MAX_ORIGINS = 1024


def _remember(data: bytes, source: Mapping[str, Any]) -> None:
    _ORIGINS.pop(data, None)
    _ORIGINS[data] = source
    while len(_ORIGINS) > MAX_ORIGINS:
        del _ORIGINS[next(iter(_ORIGINS))]


#: Secrets named by ``smtp_server_get_dynamic_parameters`` answers (five minutes each).
CONNECTION_SECRETS = SecretCache()


def has_vault_sources(config: Any) -> bool:
    """True when a listener's configuration names a key source in Vault."""
    blocks = [*getattr(config, "peer", {}).values(), *getattr(config, "via", {}).values()]
    return any(is_vault_source(getattr(config, name, None)) for name in _FIELDS) or any(
        is_vault_source(table.get(name)) for table in blocks for name in _FIELDS
    )


async def read_listener_vault_sources(config: ConfigT, function: str) -> ConfigT:
    """``config`` (a listener's configuration) with every Vault key source replaced by
    the data it names; ``config`` itself when it has none. Errors name ``function``."""
    changes: dict[str, Any] = {}
    for name in _FIELDS:
        source = getattr(config, name, None)
        if is_vault_source(source):
            changes[name] = await _inline(source, f"{function}: {name}")
    for kind in ("peer", "via"):
        blocks = getattr(config, kind, None)
        if blocks and any(is_vault_source(t.get(n)) for t in blocks.values() for n in _FIELDS):
            changes[kind] = {
                cidr: await _inline_block(table, f"{function}: {kind}[{cidr!r}]")
                for cidr, table in blocks.items()
            }
    return dataclasses.replace(config, **changes) if changes else config  # type: ignore[type-var]


def keep_listener(into: list[ConfigT], config: ConfigT, function: str) -> Awaitable[None] | None:
    """Append ``config`` to ``into`` — at once, or (the awaitable returned) once its Vault
    sources were read: a policy function that records a listener returns this."""
    if not has_vault_sources(config):
        into.append(config)
        return None

    async def read_then_add() -> None:
        into.append(await read_listener_vault_sources(config, function))

    return read_then_add()


async def _inline(source: Any, who: str) -> dict[str, bytes]:
    data = await read_vault_secret(source, who)
    _remember(data, source)
    return {"key_data": data}


def from_vault(source: Any) -> bool:
    """True for a listener's (or its blocks') key source inlined from a Vault read."""
    if not isinstance(source, Mapping):
        return False
    data = source.get("key_data")
    return isinstance(data, bytes) and data in _ORIGINS


async def read_connection_vault_sources(config: ConfigT, who: str) -> ConfigT:
    """``config`` (one connection's listener parameters) with a Vault
    ``tls_certificate``/``tls_private_key`` replaced by ``{ key_data = <secret> }``, read
    through :data:`CONNECTION_SECRETS`; ``config`` itself when it names none. Errors
    (:class:`~kumocore.errors.ConfigError`) name ``who``, the field, mount, path, status."""
    return await inline_vault_fields(config, _FIELDS, CONNECTION_SECRETS, who)


async def refreshed(source: Any, who: str) -> Any:
    """``source`` as it reads now: for the inlined data of a Vault source, ``{ key_data =
    ... }`` with the secret read again (raising as :func:`read_vault_secret` does); any
    other source unchanged (its file is read by the caller)."""
    if isinstance(source, Mapping):
        data = source.get("key_data")
        origin = _ORIGINS.get(data) if isinstance(data, bytes) else None
        if origin is not None:
            fresh = await read_vault_secret(origin, who)
            _remember(fresh, origin)  # the current one stays newest: renewals age out
            return {"key_data": fresh}
    return source


async def _inline_block(table: dict[str, Any], who: str) -> dict[str, Any]:
    result = dict(table)
    for name in _FIELDS:
        if is_vault_source(table.get(name)):
            result[name] = await _inline(table[name], f"{who}.{name}")
    return result
