"""``kumo.dkim.rsa_sha256_signer { ... }`` and ``kumo.dkim.ed25519_signer { ... }``.

Policies usually build a signer inside ``smtp_server_message_received``, i.e. once per
message. KumoMTA therefore caches signers by their parameters for ``ttl`` seconds (default
300); so do we, per plugin manager, so the per-message cost is one dictionary lookup.
Each lookup, hit, miss and build time is counted for ``/metrics`` (:mod:`kumocore.dkim.stats`).
Keys are cached separately (:mod:`kumocore.dkim.keys`), so a rotated key file is used as
soon as it changes on disk, whatever the signer TTL.

A key in HashiCorp Vault (``key = { vault_mount = ..., vault_path = ... }``) is read when
the signer is built, and kept with the signer for its ``ttl``, as KumoMTA keeps its
loaded keys: the constructor then gives Lua an awaitable (a Python policy awaits it),
and concurrent messages needing the same signer share one read.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Coroutine, Hashable, Mapping
from typing import Any

from kumocore.config.converters import BOOL, DURATION, KEY_SOURCE, STRING, STRINGS, enum, integer
from kumocore.config.options import Options, option
from kumocore.config.vault import is_vault_source, parse_vault_source, read_vault_secret
from kumocore.dkim.keys import Algorithm
from kumocore.dkim.signer import Canonicalization, Signer
from kumocore.dkim.stats import STATS, Timing
from kumocore.errors import ConfigError
from kumocore.node import cache_capacity
from kumocore.node.cache_capacity import TtlCache
from kumocore.node.memory import register_memory_cache
from kumocore.policy.policyfn import policy_function

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
    if is_vault_source(key):
        raise ConfigError(
            "kumo.dkim.*_signer: a key in HashiCorp Vault is read over the network: build "
            "the signer with the policy function (Lua waits for it; Python awaits it)"
        )
    unknown = sorted(str(k) for k in key if k != "key_data")
    if unknown or "key_data" not in key:
        what = f"unsupported key source {unknown}" if unknown else "missing 'key_data'"
        raise ConfigError(
            f"bad value for 'key' in kumo.dkim.*_signer: {what}; give a file name, "
            "{key_data = '-----BEGIN ...'} or {vault_mount = ..., vault_path = ...} "
            "(callback sources are not supported)"
        )
    data = key["key_data"]
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, bytes):
        raise ConfigError("bad value for 'key.key_data' in kumo.dkim.*_signer: expected a string")
    return None, data


class SignerCache:
    """Signers by their options, each kept for its own ``ttl`` (LRU beyond ``capacity``)."""

    def __init__(self, capacity: int | None = None) -> None:
        # KumoMTA's dkim_signer_cache (kumo.set_lruttl_cache_capacity), unless given; the
        # cache registers this object, whose resize takes the lock signing threads take.
        if capacity is None:
            capacity = cache_capacity.register("dkim_signer_cache", self)
        self._signers: TtlCache[Hashable, Signer] = TtlCache(
            capacity, counted_as="dkim_signer_cache"
        )
        self._lock = threading.Lock()
        #: Vault reads under way, by event loop and signer options (one read per signer).
        self._reads: dict[tuple[int, Hashable], asyncio.Future[Signer]] = {}
        register_memory_cache(self)  # emptied when memory runs out, as KumoMTA's

    def get(self, algorithm: Algorithm, options: Mapping[str, Any]) -> Signer:
        """The signer for ``options``: cached, or built (a lookup of KumoMTA's
        ``dkim_signer_cache``, counted in :data:`~kumocore.dkim.stats.STATS`)."""
        cache_key = (algorithm, _freeze(options))
        STATS.cache_lookup_count += 1
        signer = self._cached(cache_key)
        if signer is not None:
            STATS.cache_hit += 1
            return signer
        with Timing(STATS.creation):
            signer = make_signer(algorithm, options)  # outside the lock: may read a key file
        STATS.cache_miss += 1
        self._store(cache_key, signer)
        return signer

    def get_or_read(
        self, algorithm: Algorithm, options: Mapping[str, Any]
    ) -> Signer | Coroutine[Any, Any, Signer]:
        """:meth:`get`, or for a key in HashiCorp Vault an awaitable of the signer."""
        key = options.get("key")
        if is_vault_source(key):
            parse_vault_source(key, "'key' in kumo.dkim.*_signer")  # a bad table fails now
            return self.get_vault(algorithm, options)
        return self.get(algorithm, options)

    async def get_vault(self, algorithm: Algorithm, options: Mapping[str, Any]) -> Signer:
        """The signer whose key is in HashiCorp Vault: cached, or read once for every
        caller waiting for it."""
        cache_key = (algorithm, _freeze(options))
        STATS.cache_lookup_count += 1
        signer = self._cached(cache_key)
        if signer is not None:
            STATS.cache_hit += 1
            return signer
        read_key = (id(asyncio.get_running_loop()), cache_key)
        read = self._reads.get(read_key)
        joined = read is not None
        if read is None:
            read = asyncio.ensure_future(self._read_vault(algorithm, options, cache_key))
            self._reads[read_key] = read
            read.add_done_callback(lambda _: self._reads.pop(read_key, None))
        signer = await asyncio.shield(read)  # a cancelled waiter leaves the read to others
        if joined:
            STATS.cache_hit += 1  # another caller's read answered it: KumoMTA's waiters hit
        return signer

    async def _read_vault(
        self, algorithm: Algorithm, options: Mapping[str, Any], cache_key: Hashable
    ) -> Signer:
        """Build the signer (the miss of the caller that started the read) and keep it."""
        with Timing(STATS.creation):
            signer = await _vault_signer(algorithm, options)
        STATS.cache_miss += 1
        self._store(cache_key, signer)
        return signer

    @property
    def capacity(self) -> int:
        return self._signers.capacity

    def _cached(self, cache_key: Hashable) -> Signer | None:
        with self._lock:
            return self._signers.get(cache_key, time.monotonic())[1]

    def _store(self, cache_key: Hashable, signer: Signer) -> None:
        with self._lock:
            self._signers.put(cache_key, signer, time.monotonic() + signer.ttl)

    def resize(self, capacity: int) -> None:
        """Hold at most ``capacity`` signers from now on (the least recently used go first)."""
        with self._lock:
            self._signers.resize(capacity)

    def clear(self) -> None:
        with self._lock:
            self._signers.clear()

    def __len__(self) -> int:
        return len(self._signers)


async def _vault_signer(algorithm: Algorithm, options: Mapping[str, Any]) -> Signer:
    """A signer whose key is read from HashiCorp Vault now. The read is a key cache miss
    and a key fetch: kumocore keeps a Vault key only with its signer, never by source."""
    DkimSignerOptions.from_options(options)  # a bad option fails before any read
    source = parse_vault_source(options["key"], "'key' in kumo.dkim.*_signer")
    STATS.key_cache_lookup_count += 1
    with Timing(STATS.key_fetch):
        data = await read_vault_secret(source, "kumo.dkim.*_signer: key")
    STATS.key_cache_miss += 1
    try:
        return make_signer(algorithm, {**options, "key": {"key_data": data}})
    except ConfigError as exc:
        raise ConfigError(f"{exc} (the key read from HashiCorp Vault, {source.where})") from None


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


def make_dkim_functions(cache: SignerCache | None = None) -> dict[str, Callable[..., Any]]:
    """The ``kumo.dkim.*`` policy functions, sharing one signer cache."""
    signers = cache if cache is not None else SignerCache()

    @policy_function(table=True)
    def rsa_sha256_signer(**options: Any) -> Signer | Coroutine[Any, Any, Signer]:
        return signers.get_or_read("rsa-sha256", options)

    @policy_function(table=True)
    def ed25519_signer(**options: Any) -> Signer | Coroutine[Any, Any, Signer]:
        return signers.get_or_read("ed25519-sha256", options)

    return {"dkim.rsa_sha256_signer": rsa_sha256_signer, "dkim.ed25519_signer": ed25519_signer}
