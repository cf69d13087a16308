"""MTA-STS (RFC 8461): a recipient domain's published promise of TLS to named MX hosts.

As in KumoMTA, the policy is applied when a domain's MX set is resolved: an ``enforce``
policy drops the MX hosts its ``mx`` patterns do not allow (a domain whose policy
allows none of them is undeliverable until it is fixed, a 4xx so mail waits), and the
mode travels with the MX set so that a path with ``enable_mta_sts`` (KumoMTA's default:
on) connects with TLS required and verified (``enforce``), or tries TLS without
insisting on a valid certificate (``testing``). See :func:`tls_mode_for`.

Discovery: the ``_mta-sts.<domain>`` TXT record (``v=STSv1; id=...``) through kumocore's
resolver, then ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` over verified TLS,
no redirects, at most :data:`MAX_POLICY_SIZE` bytes within :data:`FETCH_TIMEOUT`. A
policy is cached for its ``max_age`` and refetched only when the TXT ``id`` changes
(the TXT record is looked at again at most every :data:`RECHECK_INTERVAL`);
when DNS or the fetch fails a cached policy stays in force (RFC 8461 §5.1), else the
domain is treated as having none.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
import time
from typing import TYPE_CHECKING

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult

from kumocore.delivery.mta_sts_policy import (
    PolicyError,
    StsPolicy,
    enforce_error,
    parse_policy,
    parse_txt,
)
from kumocore.dns.errors import DnsError
from kumocore.dns.site_name import factor_names, split_port
from kumocore.node import cache_capacity
from kumocore.node.cache_stats import cache_stats

if TYPE_CHECKING:
    from kumocore.config import EgressPathConfig
    from kumocore.dns.mx import MailExchanger
    from kumocore.dns.resolver import Resolver

# The policy text's parts are re-exported: callers and tests name them from here.
__all__ = [
    "MtaSts",
    "PolicyError",
    "StsPolicy",
    "parse_policy",
    "parse_txt",
    "tls_mode_for",
]

log = structlog.get_logger("kumocore.mta_sts")

MAX_POLICY_SIZE = 64 * 1024  # RFC 8461 §3.2 suggests senders cap the policy body
FETCH_TIMEOUT = 10.0
MAX_CACHED_DOMAINS = 100_000
RECHECK_INTERVAL = 60.0  # how long one TXT answer (or its absence) is trusted


class _KumoResolver(AbstractResolver):
    """aiohttp resolves ``mta-sts.<domain>`` through kumocore's resolver, so the
    policy host is found with the same DNS as the MX hosts."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self.resolver.resolve_ips(host)
        return [
            ResolveResult(
                hostname=host,
                host=ip,
                port=port,
                family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for ip in addresses
        ]

    async def close(self) -> None:
        return None


class _Policies(dict[str, tuple[StsPolicy, float]]):
    """Policies by domain with their expiry (a class of its own so that the
    ``lruttl_cache_size`` gauge can hold it by weak reference, which a dict cannot be)."""


class MtaSts:
    """Policy discovery and cache for one server (:attr:`https_port` and
    :attr:`ssl_context` exist for tests: a policy server on a loopback port with a
    private CA)."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        https_port: int = 443,
        ssl_context: ssl.SSLContext | None = None,
        shares: MtaSts | None = None,
    ) -> None:
        self.resolver = resolver
        resolver.mta_sts = self  # kumo.dns.lookup_mx applies these policies too
        self.https_port = https_port
        self._ssl_context = ssl_context
        # Policies by domain, one cache for the node as in KumoMTA: ``shares`` (the
        # default resolver's) lends its own to the policies of a define_resolver resolver.
        self._cache: _Policies = _Policies() if shares is None else shares._cache
        # Counted as KumoMTA's mta_sts_policy cache (lruttl_* in /metrics).
        self._stats = cache_stats("mta_sts_policy")
        if shares is None:
            self._stats.track(self._cache)
        # The default resolver, whose kumo.dns.configure_test_mta_sts policies apply to all.
        self._default: Resolver = resolver if shares is None else shares._default
        self._inflight: dict[str, asyncio.Task[StsPolicy | None]] = {}
        # The answer of the last discovery per domain, reused for RECHECK_INTERVAL.
        self._recent: dict[str, tuple[StsPolicy | None, float]] = {}
        self.fetches = 0

    def following(self, resolver: Resolver) -> MtaSts:
        """Policies discovered through another resolver (one of ``define_resolver``'s),
        fetched as these are and kept in the same policy cache (KumoMTA has one for the
        node): the ``_mta-sts`` TXT record is asked of ``resolver``, and a policy cached
        under the same ``id`` is reused whichever resolver found it."""
        current = resolver.mta_sts
        if isinstance(current, MtaSts) and current._cache is self._cache:
            return current
        return MtaSts(
            resolver, https_port=self.https_port, ssl_context=self._ssl_context, shares=self
        )

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """Made on the first policy fetch: loading the system CAs costs ~0.1 s, paid by
        every start (and every test node) otherwise, though few domains publish MTA-STS."""
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    @ssl_context.setter
    def ssl_context(self, context: ssl.SSLContext) -> None:
        self._ssl_context = context

    async def policy_for(self, domain: str) -> StsPolicy | None:
        """The policy in force for ``domain`` (concurrent callers share one lookup)."""
        domain = domain.lower().rstrip(".")
        tests = self._default.mta_sts_test_policies
        if tests is not None:  # as KumoMTA: no network; a domain not listed has no policy
            return tests.get(domain)
        recent = self._recent.get(domain)
        now = time.monotonic()
        if recent is not None and recent[1] > now:
            return recent[0]  # every routed message asks: spare the TXT lookup and a task
        task = self._inflight.get(domain)
        if task is None:
            task = asyncio.ensure_future(self._discover(domain))
            self._inflight[domain] = task
            task.add_done_callback(lambda _: self._inflight.pop(domain, None))
        policy = await asyncio.shield(task)
        if len(self._recent) >= MAX_CACHED_DOMAINS:
            self._recent.clear()
        self._recent[domain] = (policy, now + RECHECK_INTERVAL)
        return policy

    def _cached(self, domain: str) -> StsPolicy | None:
        entry = self._cache.get(domain)
        if entry is None or entry[1] < time.monotonic():
            self._stats.misses += 1  # an expired one is removed (an expiry) by _prune
            return None
        self._stats.hits += 1
        return entry[0]

    async def _discover(self, domain: str) -> StsPolicy | None:
        cached = self._cached(domain)
        try:
            policy_id = parse_txt(await self.resolver.lookup_txt(f"_mta-sts.{domain}"))
        except (DnsError, TimeoutError, OSError):  # DNS trouble: as if no record
            policy_id = None
        if policy_id is None:
            return cached  # RFC 8461 §5.1: a cached policy outlives a missing record
        if cached is not None and cached.id == policy_id:
            return cached
        try:
            policy = dataclasses.replace(await self._fetch(domain), id=policy_id)
        except Exception as exc:  # an unreachable or broken policy server
            log.info("MTA-STS policy fetch failed", domain=domain, error=str(exc)[:200])
            return cached
        # At most KumoMTA's mta_sts_policy capacity (kumo.set_lruttl_cache_capacity).
        capacity = cache_capacity.capacity_of("mta_sts_policy")
        self._cache.pop(domain, None)  # re-stored last: the oldest stored goes first
        if len(self._cache) >= capacity:
            self._prune(capacity)
        if capacity > 0:
            self._cache[domain] = (policy, time.monotonic() + policy.max_age)
            self._stats.inserts += 1
        return policy

    def _prune(self, capacity: int) -> None:
        """Drop expired policies, then the oldest stored until one more fits."""
        now = time.monotonic()
        for name in [n for n, (_, expires) in self._cache.items() if expires < now]:
            del self._cache[name]
            self._stats.expirations += 1
        while self._cache and len(self._cache) >= capacity:
            del self._cache[next(iter(self._cache))]
            self._stats.evictions += 1

    async def _fetch(self, domain: str) -> StsPolicy:
        self.fetches += 1
        port = "" if self.https_port == 443 else f":{self.https_port}"
        url = f"https://mta-sts.{domain}{port}/.well-known/mta-sts.txt"
        connector = aiohttp.TCPConnector(
            resolver=_KumoResolver(self.resolver), ssl=self.ssl_context, limit=1
        )
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise PolicyError(f"{url} answered HTTP {response.status}")
            if response.content_type != "text/plain":
                raise PolicyError(f"{url} is {response.content_type}, not text/plain")
            body = await response.content.read(MAX_POLICY_SIZE + 1)
            if len(body) > MAX_POLICY_SIZE or not response.content.at_eof():
                raise PolicyError(f"{url} is larger than {MAX_POLICY_SIZE} bytes")
        return parse_policy(body.decode("utf-8", "replace"))

    async def apply(self, domain: str, mx: MailExchanger) -> MailExchanger:
        """``mx`` with the domain's policy applied (see the module docstring); raises
        :class:`DnsError` when an enforce policy allows none of the MX hosts."""
        # As KumoMTA: only a real MX set (not a domain's own A record) and only while
        # kumo.dns.set_mta_sts_enabled leaves it on; then nothing is fetched either.
        # A null MX (``MX 0 .``) is a real MX set too: a testing policy marks it, an
        # enforce policy allows none of its hosts (".") and fails it, as KumoMTA's.
        if mx.is_domain_literal or not mx.is_mx:
            return mx
        if not self.resolver.mta_sts_enabled:
            return mx
        if ":" in domain:  # example.com:2525 is governed by example.com's policy (KumoMTA)
            domain = split_port(domain)[0]
        policy = await self.policy_for(domain)
        if policy is None or policy.mode == "none":
            return mx
        if policy.mode == "testing":
            return dataclasses.replace(mx, mta_sts="testing")
        by_pref = {
            pref: kept
            for pref, hosts in mx.by_pref.items()
            if (kept := [h for h in hosts if policy.allows(h)])
        }
        hosts = [h for group in by_pref.values() for h in group]
        if not hosts:
            raise DnsError(enforce_error(domain, mx.hosts, policy), name=domain)
        return dataclasses.replace(
            mx, hosts=hosts, by_pref=by_pref, site_name=factor_names(hosts), mta_sts="enforce"
        )


def tls_mode_for(config: EgressPathConfig, mx: MailExchanger | None) -> EgressPathConfig:
    """The path's TLS posture under the MX set's MTA-STS mode: ``enforce`` requires a
    verified certificate for the MX name; ``testing`` turns plain ``Opportunistic`` into
    ``OpportunisticInsecure`` (as KumoMTA; a stricter setting is kept)."""
    mode = getattr(mx, "mta_sts", "none")
    if not config.enable_mta_sts or mode == "none":
        return config
    if mode == "enforce" and config.enable_tls != "Required":
        return dataclasses.replace(config, enable_tls="Required")
    if mode == "testing" and config.enable_tls == "Opportunistic":
        return dataclasses.replace(config, enable_tls="OpportunisticInsecure")
    return config
