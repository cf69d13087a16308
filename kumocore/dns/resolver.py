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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import dns.asyncbackend
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from kumocore.dns.errors import DnsError
from kumocore.dns.hosts import HostsFile
from kumocore.dns.mx import MailExchanger, domain_literal_address
from kumocore.dns.mx_limits import MxLimits
from kumocore.dns.name_server import parse_name_server
from kumocore.dns.site_name import split_port
from kumocore.errors import ConfigError
from kumocore.node.memory import register_memory_cache

if TYPE_CHECKING:
    from kumocore.dns.resolver_config import ResolverSettings

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


def normalize_name(name: str) -> str:
    """Absolute, lower-case, IDNA-encoded text form; DnsError for names DNS cannot hold."""
    try:
        text = dns.name.from_text(name).to_text().lower()
    except dns.exception.DNSException as err:
        raise DnsError(f"invalid DNS name {name!r}: {err}", name=name) from None
    if text == ".":  # "" parses as the root, which is never a mail destination
        raise DnsError(f"invalid DNS name {name!r}: empty", name=name)
    return text


#: The record types kumocore asks for (answers may also carry CNAME, SOA and NS records).
PRELOADED_RDTYPES = ("A", "AAAA", "MX", "TXT", "PTR", "CNAME", "TLSA", "SOA", "NS")
# dnspython leaves this one unannotated; its import of the type's module is what we want.
_rdata_class: Callable[[dns.rdataclass.RdataClass, dns.rdatatype.RdataType], object] = (
    dns.rdata.get_rdata_class
)


def preload_dnspython() -> None:
    """Import now what dnspython would import during the first lookups.

    dnspython imports its asyncio backend and ``sniffio`` on the first query, and the
    module of each record type on the first answer holding one (TXT pulls in several):
    20-70 ms of imports holding the event loop, in the middle of the first deliveries.
    Called when a :class:`Resolver` is built, i.e. at start-up before listening.
    """
    dns.asyncbackend.get_backend("asyncio")
    with contextlib.suppress(ImportError):  # optional for dnspython: asyncio is assumed
        import sniffio  # noqa: F401
    for rdtype in PRELOADED_RDTYPES:
        _rdata_class(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype))


def _convert(rdtype: str, rdata: Any) -> Any:
    if rdtype == "MX":
        return (int(rdata.preference), rdata.exchange.to_text().lower())
    if rdtype == "TXT":
        # One TXT record may be split into several <=255 byte strings (long DKIM keys);
        # consumers want the record, so rejoin them without a separator (RFC 6376 §3.6.2.2).
        return b"".join(rdata.strings).decode("utf-8", "replace")
    if rdtype in ("PTR", "CNAME"):
        return str(rdata.target.to_text())
    if rdtype == "TLSA":
        return (int(rdata.usage), int(rdata.selector), int(rdata.mtype), bytes(rdata.cert))
    return str(rdata.address)


class MxStsPolicies(Protocol):
    """What :class:`kumocore.delivery.mta_sts.MtaSts` offers MX resolution (defined here,
    beside the resolver that holds it, so that neither module imports the other)."""

    async def apply(self, domain: str, mx: MailExchanger) -> MailExchanger:
        """``mx`` under the domain's policy; DnsError when ``enforce`` allows no host."""
        ...

    def following(self, resolver: Resolver) -> MxStsPolicies:
        """Policies discovered through ``resolver``, fetched with the same settings."""
        ...


class Resolver:
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
        self.negative_ttl = negative_ttl
        #: Names from the hosts file, answered before DNS (None: DNS alone).
        self.hosts = hosts
        self._clock = clock
        self._cache = _TtlCache(cache_size, clock)
        register_memory_cache(self._cache)  # emptied when memory runs out, as KumoMTA's
        self._cache_size = cache_size
        #: kumo.dns.set_mx_timeout / set_mx_negative_cache_ttl / set_mx_concurrency_limit.
        self.mx_limits = MxLimits(clock, cache_size)
        # Routing asks for the MX of every message. The MailExchanger built from a cached
        # answer is kept with that answer (per domain as asked): reused while the cache
        # still holds the very same answer, rebuilt once it expired or was replaced.
        # Nobody mutates a MailExchanger (the policy gets copies), so sharing it is safe.
        self._built_mx: dict[str, tuple[tuple[str, str], _Answer, MailExchanger]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Task[_Answer]] = {}
        # Bumped by configure(): answers still in flight from the old servers are not cached.
        self._generation = 0
        self._timeout = timeout
        #: Whether the name servers are trusted to validate DNSSEC (their AD bit is believed).
        self.validate = False
        #: ``use_hosts_file``: False ('Never') answers every name from DNS.
        self.use_hosts_file = True
        #: ``kumo.dns.set_mta_sts_enabled``: whether MX resolution applies MTA-STS policies.
        self.mta_sts_enabled = True
        #: Delivery's MTA-STS policies for this resolver's MX sets (they register here), so
        #: that kumo.dns.lookup_mx applies the same cached policies (:mod:`.mx_sts`).
        self.mta_sts: MxStsPolicies | None = None
        #: The ``positive_*_ttl`` / ``negative_*_ttl`` options (seconds).
        self._ttl_bounds: dict[str, float] = {}
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
        self.apply(ResolverSettings(tuple(NameServerSpec(spec) for spec in name_servers),
                                    lifetime=timeout, validate=validate))

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
        self.use_hosts_file = settings.use_hosts_file
        self._ttl_bounds = dict(settings.ttl_bounds)
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

    def _ttl(self, ttl: float, kind: str) -> float:
        """``ttl`` within the ``{kind}_min_ttl`` / ``{kind}_max_ttl`` options."""
        ttl = max(ttl, self._ttl_bounds.get(f"{kind}_min_ttl", ttl))
        return min(ttl, self._ttl_bounds.get(f"{kind}_max_ttl", ttl))

    @property
    def cached_entries(self) -> int:
        """How many (name, type) answers the cache holds right now."""
        return len(self._cache)

    # ------------------------------------------------------------------ lookups

    async def lookup_mx(self, domain: str) -> MailExchanger:
        """Resolve ``domain`` (``name``, ``name:port`` or a domain literal) to its MX set."""
        try:
            literal = domain_literal_address(domain)
        except ValueError as err:
            raise DnsError(str(err), name=domain) from None
        if literal is not None:
            return MailExchanger.for_literal(domain, literal)
        built = self._built_mx.get(domain)
        if built is not None and self._cache.get(built[0]) is built[1]:
            return built[2]
        host, port = split_port(domain)
        name = normalize_name(host)

        async def query() -> _Answer:
            answer = await self._query(name, "MX")
            if answer.status == "nxdomain":
                raise DnsError(f"MX lookup for {name} failed: NXDOMAIN", name=name)
            return answer

        answer = await self.mx_limits.lookup(name, query, lambda: DnsError(
            f"MX lookup for {name} timed out after {self.mx_limits.timeout:g}s",
            name=name, transient=True))
        if answer.status == "nodata":
            mx = MailExchanger.implicit(name, port)
        else:
            mx = MailExchanger.from_records(name, answer.records, port)
        if answer.secure:
            mx = dataclasses.replace(mx, is_secure=True)
        if len(self._built_mx) >= self._cache_size:
            self._built_mx.clear()
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

    # ------------------------------------------------------------------ cache & coalescing

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
        if not self._dns.nameservers:
            raise DnsError("no name servers configured", name=name, transient=True)
        try:
            # At most set_mx_concurrency_limit MX queries on the wire (kumocore.dns.mx_limits).
            async with self.mx_limits.slot() if rdtype == "MX" else contextlib.nullcontext():
                result = await self._dns.resolve(
                    name, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            answer = _Answer("nxdomain", (), self._clock() + self._ttl(self.negative_ttl,
                                                                         "negative"))
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

