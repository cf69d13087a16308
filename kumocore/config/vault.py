"""HashiCorp Vault key sources: ``{ vault_mount = ..., vault_path = ... }``.

KumoMTA's KeySource may name a secret in Vault's KV version 2 engine instead of a file or
inline data. Its fields, as KumoMTA has them:

* ``vault_mount`` and ``vault_path`` (required): the secret is read with
  ``GET <address>/v1/<mount>/data/<path>``;
* ``vault_address`` and ``vault_token``: the server and the ``X-Vault-Token``; when absent,
  ``$VAULT_ADDR`` and ``$VAULT_TOKEN`` (read when the secret is, not at policy load);
* ``vault_key`` (default ``key``): the field of the secret whose (string) value is the key.

KumoMTA reads the secret each time the key source is resolved; callers cache, as
KumoMTA's do (DKIM signers for their ``ttl``). A read is bounded (kumocore's own bounds:
KumoMTA leaves them to its HTTP client): :data:`CONNECT_TIMEOUT` to connect,
:data:`READ_TIMEOUT` for the whole exchange, :data:`MAX_RESPONSE` bytes of reply.
Redirects are not followed, so the token never goes to a host the policy did not name.
Errors name the mount, the path and the HTTP status; the token is never in them.

A read is asynchronous (aiohttp). A synchronous ``kumo.*`` function hands Lua an
awaitable instead of reading (:func:`then_with_secrets`), which the Lua bridge awaits on
the event loop: the loop is never blocked on Vault.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard, TypeVar

import aiohttp
from yarl import URL

from kumocore.errors import ConfigError

__all__ = [
    "DEFAULT_VAULT_KEY",
    "VAULT_FIELDS",
    "VaultSource",
    "is_vault_source",
    "parse_vault_source",
    "read_vault_secret",
    "then_with_secrets",
]

T = TypeVar("T")

VAULT_FIELDS = ("vault_mount", "vault_path", "vault_address", "vault_token", "vault_key")
_REQUIRED = ("vault_mount", "vault_path")
DEFAULT_VAULT_KEY = "key"

#: Seconds to open the connection to Vault.
CONNECT_TIMEOUT = 5.0
#: Seconds for the whole read (connect, request, reply): a server that accepts and never
#: answers must not hold a DKIM signature or a listener start for ever.
READ_TIMEOUT = 15.0
#: Bytes of reply accepted: a secret is a key or a certificate chain, a few KiB.
MAX_RESPONSE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class VaultSource:
    """A parsed Vault key source (``token`` stays out of ``repr``)."""

    mount: str
    path: str
    key: str = DEFAULT_VAULT_KEY
    address: str | None = None
    token: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """How errors name the secret."""
        return f"vault_mount={self.mount}, vault_path={self.path}"


def is_vault_source(source: Any) -> TypeGuard[Mapping[Any, Any]]:
    """True for a table holding any ``vault_*`` field."""
    return isinstance(source, Mapping) and any(name in source for name in VAULT_FIELDS)


def parse_vault_source(source: Mapping[Any, Any], who: str) -> VaultSource:
    """Check a Vault key source table; :class:`ConfigError` naming ``who`` otherwise."""
    unknown = sorted(str(k) for k in source if k not in VAULT_FIELDS)
    if unknown:
        raise ConfigError(
            f"{who}: unknown field {unknown[0]!r} in a HashiCorp Vault key source, "
            f"expected {', '.join(VAULT_FIELDS)}"
        )
    for name in VAULT_FIELDS:
        value = source.get(name)
        if value is None and name in _REQUIRED:
            raise ConfigError(f"{who}: a HashiCorp Vault key source needs {name}")
        if value is not None and not isinstance(value, str):
            shown = "<hidden>" if name == "vault_token" else repr(value)
            raise ConfigError(f"{who}: {name} must be a string, got {shown:.80}")
    return VaultSource(
        mount=source["vault_mount"],
        path=source["vault_path"],
        key=source.get("vault_key") or DEFAULT_VAULT_KEY,
        address=source.get("vault_address"),
        token=source.get("vault_token"),
    )


def _setting(given: str | None, name: str, env: str, who: str, where: str) -> str:
    if given is not None:
        return given
    value = os.environ.get(env)
    if not value:
        raise ConfigError(f"{who}: {name} was not specified and ${env} is not set ({where})")
    return value


def _secret_url(address: str, source: VaultSource, who: str) -> URL:
    base = URL(address)
    if base.scheme not in ("http", "https") or not base.host:
        raise ConfigError(
            f"{who}: vault_address must be an http:// or https:// URL, got {address!r:.80} "
            f"({source.where})"
        )
    quote = urllib.parse.quote
    path = f"/v1/{quote(source.mount.strip('/'))}/data/{quote(source.path.lstrip('/'))}"
    return base.with_path(base.path.rstrip("/") + path, encoded=True)


async def read_vault_secret(source: VaultSource | Mapping[Any, Any], who: str) -> bytes:
    """The value of ``vault_key`` in the KV v2 secret ``source`` names, as bytes."""
    if not isinstance(source, VaultSource):
        source = parse_vault_source(source, who)
    where = source.where
    address = _setting(source.address, "vault_address", "VAULT_ADDR", who, where)
    token = _setting(source.token, "vault_token", "VAULT_TOKEN", who, where)
    url = _secret_url(address, source, who)
    timeout = aiohttp.ClientTimeout(total=READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    headers = {"X-Vault-Token": token, "X-Vault-Request": "true"}
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=headers, allow_redirects=False) as reply,
        ):
            body = await _bounded_body(reply, who, where)
            status = reply.status
    except TimeoutError:
        raise ConfigError(
            f"{who}: HashiCorp Vault read of {where} timed out after {READ_TIMEOUT:g}s"
        ) from None
    except aiohttp.ClientError as exc:
        raise ConfigError(
            f"{who}: HashiCorp Vault read of {where} failed: {_scrub(str(exc), token)}"
        ) from None
    if status != 200:
        detail = _vault_errors(body)
        raise ConfigError(
            f"{who}: HashiCorp Vault read of {where} failed: HTTP {status}"
            + (f": {_scrub(detail, token)}" if detail else "")
        )
    return _value(body, source, who)


async def _bounded_body(reply: aiohttp.ClientResponse, who: str, where: str) -> bytes:
    too_big = ConfigError(
        f"{who}: HashiCorp Vault reply for {where} is larger than {MAX_RESPONSE} bytes"
    )
    if reply.content_length is not None and reply.content_length > MAX_RESPONSE:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    while chunk := await reply.content.read(64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _vault_errors(body: bytes) -> str:
    """Vault's ``{"errors": [...]}`` texts, shortened (empty when there are none)."""
    try:
        errors = json.loads(body).get("errors")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(errors, list):
        return ""
    return "; ".join(str(e) for e in errors)[:200]


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "<token>") if token else text


def _value(body: bytes, source: VaultSource, who: str) -> bytes:
    try:
        document = json.loads(body)
        data = document["data"]["data"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{who}: HashiCorp Vault reply for {source.where} is not a KV version 2 secret "
            "(no data.data object)"
        ) from None
    value = data.get(source.key) if isinstance(data, dict) else None
    if not isinstance(value, str):
        raise ConfigError(
            f"{who}: vault secret at {source.path} does not contain key '{source.key}'"
        )
    return value.encode("utf-8")


def then_with_secrets(
    who: str, sources: Sequence[Any], then: Callable[..., T], names: Sequence[str] = ()
) -> T | Coroutine[Any, Any, T]:
    """``then(*sources)`` at once when none of ``sources`` is a Vault source; otherwise a
    coroutine that reads the Vault ones and passes ``{ key_data = ... }`` in their place.
    Errors name ``who`` and, when given, the source's entry in ``names``.

    For the synchronous ``kumo.*`` functions that take key sources: Lua awaits the
    coroutine on the event loop, and a file or inline key costs nothing extra."""
    if not any(is_vault_source(source) for source in sources):
        return then(*sources)
    whos = [f"{who}: {name}" for name in names] or [who] * len(sources)
    parsed = [
        parse_vault_source(s, whos[i]) if is_vault_source(s) else s for i, s in enumerate(sources)
    ]

    async def read_then() -> T:
        resolved = [
            {"key_data": await read_vault_secret(s, whos[i])} if isinstance(s, VaultSource) else s
            for i, s in enumerate(parsed)
        ]
        return then(*resolved)

    return read_then()
