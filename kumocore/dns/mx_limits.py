"""The MX resolution limits of ``kumo.dns.set_mx_timeout``, ``set_mx_negative_cache_ttl``
and ``set_mx_concurrency_limit`` (KumoMTA's names and defaults).

* **timeout** (5 s): the whole MX lookup of a domain, waiting for a concurrency slot
  included, on top of the resolver's own ``timeout`` (the smaller one wins);
* **negative cache TTL**: once a policy sets it, a failed MX resolution — NXDOMAIN, a
  timeout, a SERVFAIL — is remembered and answered again, without a query, for that long,
  as KumoMTA caches MX failures (0 turns it off). Unset, kumocore keeps its own rule:
  NXDOMAIN is cached for the resolver's short negative TTL and transient failures are
  not cached, so mail flows as soon as DNS is back. KumoMTA's default is 5 minutes for
  every failure; kumocore does not make that the default because a SERVFAIL or timeout
  would then hold a domain's mail for 5 minutes after DNS recovered;
* **concurrency limit** (128): MX queries sent to the name servers at once; more wait.
  Queries already coalesce per name, so the limit counts distinct domains.

Each :class:`~kumocore.dns.resolver.Resolver` holds one :class:`MxLimits`. Those of a
resolver named by ``kumo.dns.define_resolver`` follow the default resolver's (KumoMTA has
one timeout and one concurrency limit per process) and remember no failure (KumoMTA's
lookups through a named resolver skip its MX cache, where failures are remembered).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from kumocore.config.duration import parse_duration
from kumocore.dns.errors import DnsError
from kumocore.errors import ConfigError

T = TypeVar("T")

DEFAULT_TIMEOUT = 5.0
DEFAULT_CONCURRENCY = 128


class MxLimits:
    """Timeout, failure cache and concurrency cap of one resolver's MX lookups."""

    def __init__(
        self, clock: Callable[[], float], max_failures: int, *, follows: MxLimits | None = None
    ) -> None:
        self._timeout = DEFAULT_TIMEOUT
        #: None: not set by the policy (failures are not remembered here, see above).
        self.negative_ttl: float | None = None
        self._concurrency = DEFAULT_CONCURRENCY
        #: The default resolver's limits, which a named resolver's follow (its own
        #: ``negative_ttl`` stays unset: no policy function reaches it).
        self._follows = follows
        self._clock = clock
        self._max_failures = max(1, max_failures)
        # name -> (until, text, transient): a fresh DnsError is raised each time (one
        # remembered exception object would pile up the tracebacks of every raise).
        self._failures: dict[str, tuple[float, str, bool]] = {}
        # A semaphore belongs to one event loop (tests run several): one per loop and limit.
        self._semaphore: tuple[Any, int, asyncio.Semaphore] | None = None

    @classmethod
    def following(cls, default: MxLimits) -> MxLimits:
        """The limits of a named resolver: ``default``'s timeout and concurrency slots."""
        return cls(default._clock, 1, follows=default)

    @property
    def timeout(self) -> float:
        """Seconds one domain's MX lookup may take."""
        return self._timeout if self._follows is None else self._follows.timeout

    @property
    def concurrency(self) -> int:
        """MX queries on the wire at once."""
        return self._concurrency if self._follows is None else self._follows.concurrency

    # ------------------------------------------------------------------ the setters
    def set_timeout(self, value: Any) -> None:
        seconds = parse_duration(value, key="dns.set_mx_timeout")
        if seconds <= 0:
            raise ConfigError(f"dns.set_mx_timeout: expected a positive duration, got {value!r}")
        self._timeout = seconds

    def set_negative_ttl(self, value: Any) -> None:
        self.negative_ttl = parse_duration(value, key="dns.set_mx_negative_cache_ttl")
        self._failures.clear()  # remembered under the old TTL

    def set_concurrency(self, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"dns.set_mx_concurrency_limit: expected a whole number >= 1, got {value!r}"
            )
        self._concurrency = value

    # ------------------------------------------------------------------ lookups
    async def lookup(
        self, name: str, query: Callable[[], Awaitable[T]], timed_out: Callable[[], DnsError]
    ) -> T:
        """``query()`` for the MX of ``name`` under the timeout; a failure (any
        :class:`DnsError`) is remembered for the negative TTL and raised again meanwhile."""
        remembered = self._failures.get(name)
        if remembered is not None:
            until, text, transient = remembered
            if until > self._clock():
                raise DnsError(text, name=name, transient=transient)
            del self._failures[name]
        try:
            async with asyncio.timeout(self.timeout):
                return await query()
        except TimeoutError:
            error = timed_out()
            self._remember(name, error)
            raise error from None
        except DnsError as error:
            self._remember(name, error)
            raise

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One of the ``concurrency`` MX queries that may be on the wire at once."""
        if self._follows is not None:  # the default resolver's slots, shared
            async with self._follows.slot():
                yield
            return
        loop = asyncio.get_running_loop()
        current = self._semaphore
        if current is None or current[0] is not loop or current[1] != self.concurrency:
            current = self._semaphore = (
                loop,
                self.concurrency,
                asyncio.Semaphore(self.concurrency),
            )
        async with current[2]:
            yield

    def forget(self) -> None:
        """Drop the remembered failures (the name servers changed)."""
        self._failures.clear()

    def _remember(self, name: str, error: DnsError) -> None:
        if self.negative_ttl is None or self.negative_ttl <= 0:
            return
        now = self._clock()
        if len(self._failures) >= self._max_failures:
            self._failures = {k: v for k, v in self._failures.items() if v[0] > now}
            while len(self._failures) >= self._max_failures:  # still full: oldest first
                del self._failures[next(iter(self._failures))]
        self._failures[name] = (now + self.negative_ttl, str(error), error.transient)


def make_mx_limit_functions(limits: MxLimits) -> dict[str, Callable[..., Any]]:
    """The ``dns.set_mx_*`` entries of ``kumo_register_policy_functions``."""

    def set_mx_timeout(duration: Any) -> None:
        """``kumo.dns.set_mx_timeout('5s')``: the time limit of one domain's MX lookup."""
        limits.set_timeout(duration)

    def set_mx_negative_cache_ttl(duration: Any) -> None:
        """``kumo.dns.set_mx_negative_cache_ttl('5m')``: how long a failed MX lookup is
        remembered (and answered again without a query)."""
        limits.set_negative_ttl(duration)

    def set_mx_concurrency_limit(limit: Any) -> None:
        """``kumo.dns.set_mx_concurrency_limit(128)``: MX queries on the wire at once."""
        limits.set_concurrency(limit)

    return {
        "dns.set_mx_timeout": set_mx_timeout,
        "dns.set_mx_negative_cache_ttl": set_mx_negative_cache_ttl,
        "dns.set_mx_concurrency_limit": set_mx_concurrency_limit,
    }
