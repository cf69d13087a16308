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
import re
import socket
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult

from kumocore.digits import decimal
from kumocore.dns.errors import DnsError
from kumocore.dns.site_name import factor_names, split_port

if TYPE_CHECKING:
    from kumocore.config import EgressPathConfig
    from kumocore.dns.mx import MailExchanger
    from kumocore.dns.resolver import Resolver

log = structlog.get_logger("kumocore.mta_sts")

MAX_POLICY_SIZE = 64 * 1024  # RFC 8461 §3.2 suggests senders cap the policy body
FETCH_TIMEOUT = 10.0
MAX_MAX_AGE = 31_557_600  # one year, RFC 8461 §3.2
MAX_CACHED_DOMAINS = 100_000
RECHECK_INTERVAL = 60.0  # how long one TXT answer (or its absence) is trusted
MODES = ("enforce", "testing", "none")
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


class PolicyError(ValueError):
    """A TXT record or policy file that does not follow RFC 8461."""


@dataclass(frozen=True)
class StsPolicy:
    mode: str
    mx: tuple[str, ...]
    max_age: int
    id: str = ""

    def allows(self, host: str) -> bool:
        """RFC 8461 §4.1: an exact name, or ``*.parent`` matching one leftmost label."""
        name = split_port(host)[0].lower().rstrip(".")
        for pattern in self.mx:
            if pattern.startswith("*."):
                label, _, parent = name.partition(".")
                if label and parent == pattern[2:]:
                    return True
            elif name == pattern:
                return True
        return False


def parse_txt(records: list[str]) -> str | None:
    """The policy ``id`` of the one ``v=STSv1`` TXT record; None when there is none or
    more than one (RFC 8461 §3.1: then the domain has no policy)."""
    ids = []
    for record in records:
        fields = [f.strip() for f in record.split(";") if f.strip()]
        if not fields or fields[0] != "v=STSv1":
            continue
        values = dict(f.partition("=")[::2] for f in fields[1:])
        if not _ID.match(values.get("id", "")):
            continue
        ids.append(values["id"])
    return ids[0] if len(ids) == 1 else None


def parse_policy(text: str, policy_id: str = "") -> StsPolicy:
    """Parse a policy file; :class:`PolicyError` names what is wrong."""
    fields: dict[str, str] = {}
    mx: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PolicyError(f"policy line without a colon: {line[:80]!r}")
        key, value = key.strip(), value.strip()
        if key == "mx":
            mx.append(value.lower().rstrip("."))
        else:
            fields.setdefault(key, value)
    if fields.get("version") != "STSv1":
        raise PolicyError("policy version is not STSv1")
    mode = fields.get("mode", "")
    if mode not in MODES:
        raise PolicyError(f"policy mode {mode!r} is not enforce, testing or none")
    age_text = fields.get("max_age", "")
    age = decimal(age_text, max_digits=10)
    if age is None:
        raise PolicyError(f"policy max_age {age_text!r} is not a number of seconds")
    if mode != "none" and not mx:
        raise PolicyError(f"a {mode} policy names no mx")
    return StsPolicy(mode, tuple(mx), min(age, MAX_MAX_AGE), policy_id)


class _KumoResolver(AbstractResolver):
    """aiohttp resolves ``mta-sts.<domain>`` through kumocore's resolver, so the
    policy host is found with the same DNS as the MX hosts."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self.resolver.resolve_ips(host)
        return [ResolveResult(hostname=host, host=ip, port=port,
                              family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST) for ip in addresses]

    async def close(self) -> None:
        return None


class MtaSts:
    """Policy discovery and cache for one server (:attr:`https_port` and
    :attr:`ssl_context` exist for tests: a policy server on a loopback port with a
    private CA)."""

    def __init__(
        self, resolver: Resolver, *, https_port: int = 443,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.resolver = resolver
        resolver.mta_sts = self  # kumo.dns.lookup_mx applies these policies too
        self.https_port = https_port
        self._ssl_context = ssl_context
        self._cache: dict[str, tuple[StsPolicy, float]] = {}
        self._inflight: dict[str, asyncio.Task[StsPolicy | None]] = {}
        # The answer of the last discovery per domain, reused for RECHECK_INTERVAL.
        self._recent: dict[str, tuple[StsPolicy | None, float]] = {}
        self.fetches = 0

    def following(self, resolver: Resolver) -> MtaSts:
        """Policies discovered through another resolver (one of ``define_resolver``'s),
        fetched as these are."""
        return MtaSts(resolver, https_port=self.https_port, ssl_context=self._ssl_context)

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
            return None
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
        if len(self._cache) >= MAX_CACHED_DOMAINS:
            self._prune()
        self._cache[domain] = (policy, time.monotonic() + policy.max_age)
        return policy

    def _prune(self) -> None:
        now = time.monotonic()
        for name in [n for n, (_, expires) in self._cache.items() if expires < now]:
            del self._cache[name]
        while len(self._cache) >= MAX_CACHED_DOMAINS:
            del self._cache[next(iter(self._cache))]

    async def _fetch(self, domain: str) -> StsPolicy:
        self.fetches += 1
        port = "" if self.https_port == 443 else f":{self.https_port}"
        url = f"https://mta-sts.{domain}{port}/.well-known/mta-sts.txt"
        connector = aiohttp.TCPConnector(
            resolver=_KumoResolver(self.resolver), ssl=self.ssl_context, limit=1)
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
        if mx.is_domain_literal or mx.is_null_mx or not mx.is_mx:
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
        by_pref = {pref: kept for pref, hosts in mx.by_pref.items()
                   if (kept := [h for h in hosts if policy.allows(h)])}
        hosts = [h for group in by_pref.values() for h in group]
        if not hosts:
            raise DnsError(
                f"MTA-STS enforce policy for {domain} permits none of its MX hosts "
                f"{[h.rstrip('.') for h in mx.hosts]}; allowed mx patterns: "
                f"{list(policy.mx)}", name=domain)
        return dataclasses.replace(
            mx, hosts=hosts, by_pref=by_pref, site_name=factor_names(hosts), mta_sts="enforce")


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
