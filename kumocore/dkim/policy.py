"""``kumo.dkim.rsa_sha256_signer { ... }`` and ``kumo.dkim.ed25519_signer { ... }``.

Policies usually build a signer inside ``smtp_server_message_received``, i.e. once per
message. KumoMTA therefore caches signers by their parameters for ``ttl`` seconds (default
300); so do we, per plugin manager, so the per-message cost is one dictionary lookup.
Keys are cached separately (:mod:`kumocore.dkim.keys`), so a rotated key file is used as
soon as it changes on disk, whatever the signer TTL.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from kumocore.config.options import (
    BOOL,
    DURATION,
    KEY_SOURCE,
    STRING,
    STRINGS,
    Options,
    enum,
    integer,
    option,
)
from kumocore.dkim.keys import Algorithm
from kumocore.dkim.signer import Canonicalization, Signer
from kumocore.errors import ConfigError
from kumocore.node.memory import register_memory_cache
from kumocore.policy.policyfn import policy_function

#: How many distinct signer configurations are kept; KumoMTA's dkim_signer_cache default.
SIGNER_CACHE_SIZE = 1024

_CANON = enum("Relaxed", "Simple")


class DkimSignerOptions(Options, options_for="kumo.dkim.*_signer"):
    """The options table KumoMTA's two DKIM signer constructors take."""

    domain: str = option(STRING)
    selector: str = option(STRING)
    headers: tuple[str, ...] = option(STRINGS)
    key: str | dict[Any, Any] = option(KEY_SOURCE)
    header_canonicalization: str = option(_CANON, default="Relaxed")
    body_canonicalization: str = option(_CANON, default="Relaxed")
    expiration: int | None = option(integer(1), default=None)
    body_length: bool = option(BOOL, default=False)
    over_sign: bool = option(BOOL, default=False)
    ttl: float = option(DURATION, default=300)
    atps: str | None = option(STRING, default=None)
    atpsh: str | None = option(STRING, default=None)
    agent_user_identifier: str | None = option(STRING, default=None)
    reporting: bool = option(BOOL, default=False)


def make_signer(algorithm: Algorithm, options: Mapping[str, Any]) -> Signer:
    """Validate ``options`` and build a :class:`Signer`, loading its key once.

    Loading the key here makes a missing or malformed key fail when the policy builds the
    signer, with a :class:`ConfigError` naming the path, instead of at the first message.
    """
    opts = DkimSignerOptions.from_options(options)
    key_path, key_data = _key_source(opts.key)
    signer = Signer(
        domain=opts.domain,
        selector=opts.selector,
        headers=opts.headers,
        key_path=key_path,
        key_data=key_data,
        algorithm=algorithm,
        header_canonicalization=_canon(opts.header_canonicalization),
        body_canonicalization=_canon(opts.body_canonicalization),
        expiration=opts.expiration,
        body_length=opts.body_length,
        over_sign=opts.over_sign,
        ttl=opts.ttl,
        atps=opts.atps,
        atpsh=opts.atpsh,
        agent_user_identifier=opts.agent_user_identifier,
        reporting=opts.reporting,
    )
    signer.private_key()
    return signer


def _canon(value: str) -> Canonicalization:
    return "Simple" if value == "Simple" else "Relaxed"


def _key_source(key: str | Mapping[Any, Any]) -> tuple[str | None, bytes | None]:
    if isinstance(key, str):
        return os.path.abspath(key), None
    unknown = sorted(str(k) for k in key if k != "key_data")
    if unknown or "key_data" not in key:
        what = f"unsupported key source {unknown}" if unknown else "missing 'key_data'"
        raise ConfigError(
            f"bad value for 'key' in kumo.dkim.*_signer: {what}; give a file name or "
            "{key_data = '-----BEGIN ...'} (vault and callback sources are not supported)"
        )
    data = key["key_data"]
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, bytes):
        raise ConfigError("bad value for 'key.key_data' in kumo.dkim.*_signer: expected a string")
    return None, data


class SignerCache:
    """Signers by their options, each kept for its own ``ttl`` (LRU beyond ``capacity``)."""

    def __init__(self, capacity: int = SIGNER_CACHE_SIZE) -> None:
        self.capacity = capacity
        self._entries: dict[Hashable, tuple[float, Signer]] = {}
        self._lock = threading.Lock()
        register_memory_cache(self)  # emptied when memory runs out, as KumoMTA's

    def get(self, algorithm: Algorithm, options: Mapping[str, Any]) -> Signer:
        cache_key = (algorithm, _freeze(options))
        now = time.monotonic()
        with self._lock:
            entry = self._entries.pop(cache_key, None)
            if entry is not None and entry[0] > now:
                self._entries[cache_key] = entry  # re-insert: most recently used is last
                return entry[1]
        signer = make_signer(algorithm, options)  # outside the lock: may read a key file
        with self._lock:
            self._entries[cache_key] = (now + signer.ttl, signer)
            while len(self._entries) > self.capacity:
                del self._entries[next(iter(self._entries))]
        return signer

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _first(item: tuple[str, Hashable]) -> str:
    return item[0]


#: Option values that are their own key (with their type, so that True and 1 differ).
_SCALARS = (str, int, float, bool, type(None), bytes)


def _freeze(value: Any) -> Hashable:
    """A hashable equivalent of a policy value (Lua tables arrive as dicts and lists).

    A policy builds its signer for every message, so this runs per message: scalars are
    tested first, and a table is sorted by its keys alone (its values' ``repr`` was most
    of the cost); equal keys keep their order, so no two values are ever compared."""
    if type(value) in _SCALARS:
        return (type(value).__name__, value)
    if isinstance(value, Mapping):
        return tuple(sorted(((str(k), _freeze(v)) for k, v in value.items()), key=_first))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Hashable):
        return (type(value).__name__, value)  # so that True and 1 are different keys
    raise ConfigError(f"unsupported value in kumo.dkim.*_signer options: {value!r}")


def make_dkim_functions(cache: SignerCache | None = None) -> dict[str, Callable[..., Signer]]:
    """The ``kumo.dkim.*`` policy functions, sharing one signer cache."""
    signers = cache if cache is not None else SignerCache()

    @policy_function(table=True)
    def rsa_sha256_signer(**options: Any) -> Signer:
        return signers.get("rsa-sha256", options)

    @policy_function(table=True)
    def ed25519_signer(**options: Any) -> Signer:
        return signers.get("ed25519-sha256", options)

    return {"dkim.rsa_sha256_signer": rsa_sha256_signer, "dkim.ed25519_signer": ed25519_signer}
