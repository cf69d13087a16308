"""The caching asynchronous DNS resolver used by delivery and by ``kumo.dns.*``.

Built on ``dns.asyncresolver``. Three things matter for an MTA that dnspython alone does not
give us:

* a bounded TTL cache, so that a queue of a million gmail.com messages costs one MX query per
  TTL, with a short TTL for negative answers so a freshly fixed domain is picked up soon;
* request coalescing: when a queue wakes up, hundreds of dispatchers may ask for the same
  name at once and must share a single query;
* errors that tell delivery whether to retry: SERVFAIL and timeouts are ``transient``,
  NXDOMAIN is not;
* DNSSEC status for DANE: kumocore does not validate signatures itself. A resolver marked
  ``validate`` (``kumo.dns.configure_resolver { options = { validate = true } }``) asks its
  name servers for the AD bit and records it with each answer (``secure``); only then is
  an AD bit believed, as Postfix's ``smtp_dns_support_level = dnssec`` does. The name
  servers must be validating resolvers reached over a trusted path (typically loopback).

The cache, the coalescing and the query itself are :class:`~.query_cache.CachedQueries`,
which :class:`Resolver` extends with its configuration and lookups; names and records
cross into and out of dnspython in :mod:`kumocore.dns.dnspython_records`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import dns.asyncresolver
import dns.flags
import dns.name
import dns.resolver

from kumocore.dns.dnspython_records import normalize_name, preload_dnspython
from kumocore.dns.errors import DnsError
from kumocore.dns.hosts import HostsFile
from kumocore.dns.mx import MailExchanger, domain_literal
from kumocore.dns.mx_stats import MxStats
from kumocore.dns.name_server import parse_name_server
from kumocore.dns.query_cache import CachedQueries, DnssecAnswer, StaticAnswers, _Answer
from kumocore.dns.site_name import split_port
from kumocore.errors import ConfigError
from kumocore.node.cache_capacity import NamedLru

if TYPE_CHECKING:
    from kumocore.delivery.mta_sts_policy import StsPolicy
    from kumocore.dns.resolver_config import ResolverSettings


class MxStsPolicies(Protocol):
    """What :class:`kumocore.delivery.mta_sts.MtaSts` offers MX resolution (defined here,
    beside the resolver that holds it, so that neither module imports the other)."""

    async def apply(self, domain: str, mx: MailExchanger) -> MailExchanger:
        """``mx`` under the domain's policy; DnsError when ``enforce`` allows no host."""
        ...

    def following(self, resolver: Resolver) -> MxStsPolicies:
        """Policies discovered through ``resolver``, fetched with the same settings."""
        ...


class Resolver(CachedQueries):
    """Caching, coalescing DNS resolver. One per server process; safe across event loops."""

    def __init__(
        self,
        name_servers: list[str] | None = None,
        *,
        timeout: float = 5.0,
        negative_ttl: float = 60.0,
        cache_size: int = 16384,
        clock: Callable[[], float] = time.monotonic,
        hosts: HostsFile | None = None,
    ) -> None:
        preload_dnspython()  # not during the first lookups, on the event loop
        super().__init__(negative_ttl=negative_ttl, cache_size=cache_size, clock=clock)
        #: Names from the hosts file, answered before DNS (None: DNS alone).
        self.hosts = hosts
        # Routing asks for the MX of every message. The MailExchanger built from a cached
        # answer is kept with that answer (per domain as asked): reused while the cache
        # still holds the very same answer, rebuilt once it expired or was replaced.
        # Nobody mutates a MailExchanger (the policy gets copies), so sharing it is safe.
        # At most KumoMTA's dns_resolver_mx capacity of them (kumo.set_lruttl_cache_capacity),
        # and no more than the answers they are built from.
        self.mx_stats = MxStats()  # KumoMTA's dns_mx_resolve_* counts
        self._built_mx: NamedLru[str, tuple[tuple[str, str], _Answer, MailExchanger]] = NamedLru(
            "dns_resolver_mx", ceiling=cache_size
        )
        self._timeout = timeout
        #: ``use_hosts_file``: False ('Never') answers every name from DNS.
        self.use_hosts_file = True
        #: ``kumo.dns.set_mta_sts_enabled``: whether MX resolution applies MTA-STS policies.
        self.mta_sts_enabled = True
        #: Delivery's MTA-STS policies for this resolver's MX sets (they register here), so
        #: that kumo.dns.lookup_mx applies the same cached policies (:mod:`.mx_sts`).
        self.mta_sts: MxStsPolicies | None = None
        #: ``kumo.dns.configure_test_mta_sts``: fixed policies by domain that replace
        #: discovery for every resolver of the node (KumoMTA's test shorthand); None: off.
        self.mta_sts_test_policies: dict[str, StsPolicy] | None = None
        if name_servers is None:
            try:
                self._dns = dns.asyncresolver.Resolver()  # the system's /etc/resolv.conf
            except dns.resolver.NoResolverConfiguration:
                # No resolv.conf (minimal containers): lookups fail until configure().
                self._dns = dns.asyncresolver.Resolver(configure=False)
            self._apply_timeout(timeout)
        else:
            self._dns = dns.asyncresolver.Resolver(configure=False)
            self.configure(name_servers, timeout)

    # ------------------------------------------------------------------ configuration

    def configure(
        self, name_servers: list[str], timeout: float | None = None, *, validate: bool = False
    ) -> None:
        """Use ``name_servers`` (``"IP"`` or ``"IP:PORT"``) from now on; drops the cache.

        ``validate``: the name servers validate DNSSEC, so their AD bit is believed.
        """
        from kumocore.dns.resolver_config import NameServerSpec, ResolverSettings

        if not name_servers:
            raise ConfigError("name_servers: at least one name server is required")
        for spec in name_servers:
            parse_name_server(spec)
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"timeout: must be a positive number of seconds, got {timeout!r}")
        self.apply(
            ResolverSettings(
                tuple(NameServerSpec(spec) for spec in name_servers),
                lifetime=timeout,
                validate=validate,
            )
        )

    def apply(self, settings: ResolverSettings) -> None:
        """Use a checked resolver configuration (``kumo.dns.configure_resolver``) from now
        on; drops the cache. See :mod:`kumocore.dns.resolver_config` for each option."""
        from kumocore.dns.upstream import make_upstream

        servers = [make_upstream(spec) for spec in settings.name_servers]
        # Inert, as in KumoMTA: every query below is for an absolute name (search=False).
        self._dns.domain = dns.name.from_text(settings.domain or ".")
        self._dns.search = [dns.name.from_text(name) for name in settings.search]
        self._dns.ndots = settings.ndots
        self._dns.rotate = False  # 'UserProvidedOrder'
        if settings.edns0 is not None:
            self._dns.use_edns(0 if settings.edns0 else -1)
        self.validate = settings.validate
        # RFC 6840 §5.7: AD in a query asks the server to report validation in the reply.
        flags = dns.flags.RD if settings.recursion_desired else dns.flags.Flag(0)
        self._dns.flags = flags | dns.flags.AD if settings.validate else flags
        if settings.timeout is not None or settings.attempts is not None:
            # ``attempts`` retries: the server list is gone through attempts + 1 times in
            # one pass, so dnspython's growing pauses between passes never come into it.
            per_query = settings.timeout if settings.timeout is not None else 5.0
            tries = 1 + (2 if settings.attempts is None else settings.attempts)
            servers *= tries
            self._apply_timeout(per_query, per_query * len(servers))
        else:
            self._apply_timeout(self._timeout if settings.lifetime is None else settings.lifetime)
        self._dns.nameservers = servers
        if settings.cache_size is not None:
            self._cache_size = settings.cache_size
            self._cache.resize(settings.cache_size)
            self._built_mx.set_ceiling(settings.cache_size)
        self.use_hosts_file = settings.use_hosts_file
        self._ttl_bounds = dict(settings.ttl_bounds)
        self._static = None
        self._start_over()

    def use_zones(self, zones: StaticAnswers) -> None:
        """Answer every query from ``zones`` from now on, as KumoMTA's ``Test`` resolver
        (``kumo.dns.configure_resolver { Test = ... }``); drops the cache. As KumoMTA's,
        it reads no hosts file, and a zone marked ``secure`` is believed (DANE can use it)."""
        self._static = zones
        self.use_hosts_file = False
        self.validate = True
        self._start_over()

    def _start_over(self) -> None:
        """Forget every answer: the next lookups ask the new configuration."""
        self._generation += 1
        self._cache.clear()
        self._inflight.clear()
        self.mx_limits.forget()

    def _apply_timeout(self, timeout: float, lifetime: float | None = None) -> None:
        self._timeout = timeout
        # ``lifetime`` bounds the whole lookup (retries included), which is what a caller
        # waiting to deliver cares about; by default a lookup is one timeout long.
        self._dns.timeout = timeout
        self._dns.lifetime = timeout if lifetime is None else lifetime

    # ------------------------------------------------------------------ lookups

    async def lookup_mx(self, domain: str) -> MailExchanger:
        """Resolve ``domain`` (``name``, ``name:port`` or a domain literal) to its MX set."""
        stats = self.mx_stats
        built = self._built_mx.get(domain)
        if built is not None and self._cache.get(built[0]) is built[1]:
            self._built_mx.move_to_end(domain)  # least recently used goes first
            self._built_mx.stats.hits += 1  # as NamedLru.lookup would, inline: every message
            stats.cache_hit += 1
            return built[2]
        stats.in_progress += 1
        try:
            mx = await self._resolve_mx(domain)
        except Exception:  # (a cancelled lookup neither failed nor succeeded)
            stats.failed += 1
            raise
        finally:
            stats.in_progress -= 1
        stats.resolved += 1
        return mx

    async def _resolve_mx(self, domain: str) -> MailExchanger:
        try:
            literal = domain_literal(domain)
        except ValueError as err:
            raise DnsError(str(err), name=domain) from None
        if literal is not None:
            return MailExchanger.for_literal(domain, *literal)
        self.mx_stats.cache_miss += 1  # and dns_resolver_mx's (an outdated MX set expires):
        self._built_mx.missed(domain, self._built_mx.get(domain))
        host, port = split_port(domain)
        name = normalize_name(host)

        async def query() -> _Answer:
            answer = await self._query(name, "MX")
            if answer.status == "nxdomain":
                raise DnsError(f"MX lookup for {name} failed: NXDOMAIN", name=name)
            return answer

        answer = await self.mx_limits.lookup(
            name,
            query,
            lambda: DnsError(
                f"MX lookup for {name} timed out after {self.mx_limits.timeout:g}s",
                name=name,
                transient=True,
            ),
        )
        if answer.status == "nodata":
            mx = MailExchanger.implicit(name, port)
        else:
            mx = MailExchanger.from_records(name, answer.records, port)
        if answer.secure:
            mx = dataclasses.replace(mx, is_secure=True)
        self._built_mx[domain] = ((name, "MX"), answer, mx)
        return mx

    async def lookup_addr(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of ``host``; [] if it exists without any; NXDOMAIN raises."""
        name = normalize_name(host)
        hosts = self.hosts if self.use_hosts_file else None
        listed = hosts.lookup(name) if hosts is not None else None
        if listed is not None:  # the hosts file first, as KumoMTA's resolver does
            return listed
        a, aaaa = await asyncio.gather(self._query(name, "A"), self._query(name, "AAAA"))
        if a.status == "nxdomain" and aaaa.status == "nxdomain":
            raise DnsError(f"address lookup for {name} failed: NXDOMAIN", name=name)
        return [*a.records, *aaaa.records]

    async def resolve_ips(self, host: str) -> list[str]:
        """Addresses to connect to for an MX host; a literal IP (or ``[IP]``) is returned as is.

        Unlike :meth:`lookup_addr`, a host with no address at all is an error: delivery
        cannot use it, and the message says why.
        """
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            return [str(ipaddress.ip_address(bare))]
        except ValueError:
            pass
        addresses = await self.lookup_addr(host)
        if not addresses:
            raise DnsError(f"{host} has no A or AAAA records", name=host)
        return addresses

    async def lookup_txt(self, name: str) -> list[str]:
        """The TXT records of ``name``, each rejoined into one string; NXDOMAIN raises."""
        fqdn = normalize_name(name)
        answer = await self._query(fqdn, "TXT")
        if answer.status == "nxdomain":
            raise DnsError(f"TXT lookup for {fqdn} failed: NXDOMAIN", name=fqdn)
        return list(answer.records)

    async def lookup_records(self, name: str, rdtype: str) -> list[str] | None:
        """The ``A``/``AAAA``/``TXT``/``PTR`` records of ``name`` (cached); ``[]`` when the
        name exists without them, None when it does not exist (NXDOMAIN)."""
        answer = await self._query(normalize_name(name), rdtype)
        return None if answer.status == "nxdomain" else list(answer.records)

    async def lookup_dnssec(self, name: str, rdtype: str) -> DnssecAnswer:
        """One (cached) query with its DNSSEC status, for DANE; DnsError when it failed."""
        answer = await self._query(normalize_name(name), rdtype)
        return DnssecAnswer(answer.status, answer.records, answer.secure)
