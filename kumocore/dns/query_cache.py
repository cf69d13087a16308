"""The cached, coalesced (name, type) queries under :class:`~kumocore.dns.resolver.Resolver`.

Each query concludes an :class:`_Answer` (records, or that the name exists without them,
or does not exist), kept in a bounded LRU until its own TTL runs out, with a short TTL
for negative answers so that a freshly fixed domain is picked up soon. Callers asking for
the same (name, type) while it is on the wire share the one query. A failure that may
heal (a timeout, SERVFAIL) raises a transient :class:`~kumocore.dns.errors.DnsError` and
is not cached. :class:`CachedQueries` holds this layer; the Resolver, which subclasses
it, sets up the dnspython resolver the queries go to and builds the lookups on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.resolver

from kumocore.dns.dnspython_records import _convert
from kumocore.dns.errors import DnsError
from kumocore.dns.mx_limits import MxLimits
from kumocore.node.memory import register_memory_cache

#: What one (name, type) query may conclude; "nodata" means the name exists.
Status = Literal["ok", "nodata", "nxdomain"]


@dataclass(frozen=True, slots=True)
class _Answer:
    status: Status
    #: Normalised rdata: ``(pref, exchange)`` for MX, text for A/AAAA/TXT,
    #: ``(usage, selector, matching type, data)`` for TLSA.
    records: tuple[Any, ...]
    expires: float
    #: The validating name server set the AD bit (only recorded when ``validate`` is on).
    secure: bool = False


@dataclass(frozen=True, slots=True)
class DnssecAnswer:
    """What :meth:`Resolver.lookup_dnssec` found: ``secure`` is the believed AD bit."""

    status: Status
    records: tuple[Any, ...]
    secure: bool


class StaticAnswers(Protocol):
    """Answers held in memory instead of asked of name servers (KumoMTA's ``Test``
    resolver, :class:`kumocore.dns.static_zones.StaticZones`)."""

    def answer(self, name: str, rdtype: str, now: float) -> _Answer:
        """The answer for (name, type) at ``now``; a transient DnsError for SERVFAIL."""
        ...


class _TtlCache:
    """A size-bounded LRU of answers, each valid until its own expiry time."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self._entries: OrderedDict[tuple[str, str], _Answer] = OrderedDict()
        self._max_entries = max_entries
        self._clock = clock

    def get(self, key: tuple[str, str]) -> _Answer | None:
        answer = self._entries.get(key)
        if answer is None:
            return None
        if answer.expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return answer

    def put(self, key: tuple[str, str], answer: _Answer) -> None:
        self._entries[key] = answer
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def resize(self, max_entries: int) -> None:
        """Hold at most ``max_entries`` from now on (the oldest go first)."""
        self._max_entries = max_entries
        while len(self._entries) > max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class CachedQueries:
    """The query layer of a :class:`~kumocore.dns.resolver.Resolver`: its answer cache,
    the queries in flight, and the one query per (name, type) that fills them."""

    #: The dnspython resolver the queries go to (the Resolver sets it up).
    _dns: dns.asyncresolver.Resolver

    def __init__(self, *, negative_ttl: float, cache_size: int, clock: Callable[[], float]) -> None:
        self.negative_ttl = negative_ttl
        self._clock = clock
        self._cache = _TtlCache(cache_size, clock)
        register_memory_cache(self._cache)  # emptied when memory runs out, as KumoMTA's
        self._cache_size = cache_size
        #: kumo.dns.set_mx_timeout / set_mx_negative_cache_ttl / set_mx_concurrency_limit.
        self.mx_limits = MxLimits(clock, cache_size)
        self._inflight: dict[tuple[str, str], asyncio.Task[_Answer]] = {}
        # Bumped by configure(): answers still in flight from the old servers are not cached.
        self._generation = 0
        #: Whether the name servers are trusted to validate DNSSEC (their AD bit is believed).
        self.validate = False
        #: The ``positive_*_ttl`` / ``negative_*_ttl`` options (seconds).
        self._ttl_bounds: dict[str, float] = {}
        #: Zones answering every query instead of the name servers (None: the wire).
        self._static: StaticAnswers | None = None

    def _ttl(self, ttl: float, kind: str) -> float:
        """``ttl`` within the ``{kind}_min_ttl`` / ``{kind}_max_ttl`` options."""
        ttl = max(ttl, self._ttl_bounds.get(f"{kind}_min_ttl", ttl))
        return min(ttl, self._ttl_bounds.get(f"{kind}_max_ttl", ttl))

    @property
    def cached_entries(self) -> int:
        """How many (name, type) answers the cache holds right now."""
        return len(self._cache)

    async def _query(self, name: str, rdtype: str) -> _Answer:
        key = (name, rdtype)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        loop = asyncio.get_running_loop()
        task = self._inflight.get(key)
        # A task belongs to one event loop; never share one across loops (tests, threads).
        if task is None or task.get_loop() is not loop:
            task = loop.create_task(self._fetch(name, rdtype))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # shield: one caller being cancelled must not cancel the query the others await.
        return await asyncio.shield(task)

    def _forget(self, key: tuple[str, str], task: asyncio.Task[_Answer]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning if nobody waits

    async def _fetch(self, name: str, rdtype: str) -> _Answer:
        generation = self._generation
        if self._static is not None:
            answer = self._static.answer(name, rdtype, self._clock())
            self._cache.put((name, rdtype), answer)
            return answer
        if not self._dns.nameservers:
            raise DnsError("no name servers configured", name=name, transient=True)
        try:
            # At most set_mx_concurrency_limit MX queries on the wire (kumocore.dns.mx_limits).
            async with self.mx_limits.slot() if rdtype == "MX" else contextlib.nullcontext():
                result = await self._dns.resolve(
                    name, rdtype, raise_on_no_answer=False, search=False
                )
        except dns.resolver.NXDOMAIN:
            answer = _Answer(
                "nxdomain", (), self._clock() + self._ttl(self.negative_ttl, "negative")
            )
        except dns.exception.DNSException as err:
            # Anything but NXDOMAIN (timeouts, SERVFAIL, REFUSED...) may heal: retry later.
            reason = (
                f"timed out after {self._dns.lifetime:g}s"
                if isinstance(err, dns.exception.Timeout)
                else "failed: no name server could answer (SERVFAIL)"
                if isinstance(err, dns.resolver.NoNameservers)
                else f"failed: {err}"
            )
            raise DnsError(
                f"{rdtype} lookup for {name} {reason}", name=name, transient=True
            ) from None
        else:
            if result.rrset is None:
                secure = self.validate and bool(result.response.flags & dns.flags.AD)
                expires = self._clock() + self._ttl(self.negative_ttl, "negative")
                answer = _Answer("nodata", (), expires, secure)
            else:
                # ``expiration`` already accounts for the lowest TTL along a CNAME chain.
                ttl = self._ttl(max(0.0, result.expiration - time.time()), "positive")
                records = tuple(_convert(rdtype, rdata) for rdata in result.rrset)
                secure = self.validate and bool(result.response.flags & dns.flags.AD)
                answer = _Answer("ok", records, self._clock() + ttl, secure)
        # Transient failures are deliberately not cached: the next attempt asks again.
        if generation == self._generation:
            self._cache.put((name, rdtype), answer)
        return answer
