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
import dataclasses
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.name
import dns.nameserver
import dns.resolver

from kumocore.dns.hosts import HostsFile
from kumocore.dns.mx import MailExchanger, domain_literal_address
from kumocore.dns.site_name import split_bracketed, split_port
from kumocore.errors import ConfigError

#: What one (name, type) query may conclude; "nodata" means the name exists.
Status = Literal["ok", "nodata", "nxdomain"]


class DnsError(Exception):
    """A DNS lookup failed. ``transient`` says whether trying again later may succeed.

    NXDOMAIN (the name does not exist) is permanent: delivery bounces. SERVFAIL, REFUSED and
    timeouts are transient: delivery defers and retries.
    """

    def __init__(self, message: str, *, name: str = "", transient: bool = False) -> None:
        super().__init__(message)
        self.name = name
        self.transient = transient


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

    def __len__(self) -> int:
        return len(self._entries)


def parse_name_server(spec: str) -> dns.nameserver.Do53Nameserver:
    """``"127.0.0.1"``, ``"127.0.0.1:5353"``, ``"::1"`` or ``"[::1]:5353"`` → a name server.

    Raises :class:`kumocore.ConfigError` naming ``name_servers`` for anything else.
    """
    host, port = spec.strip(), 53
    if host.startswith("["):
        try:
            host, number = split_bracketed(host)
        except ValueError:
            raise ConfigError(
                f"name_servers: cannot parse {spec!r}; use 'IP' or 'IP:PORT'") from None
        port = number if number is not None else 53
    else:
        name, parsed = split_port(host)
        if parsed is not None:
            host, port = name, parsed
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise ConfigError(
            f"name_servers: {spec!r} is not an IP address ('IP' or 'IP:PORT' expected)"
        ) from None
    if not 0 < port < 65536:
        raise ConfigError(f"name_servers: port of {spec!r} is out of range")
    return dns.nameserver.Do53Nameserver(address, port)


def normalize_name(name: str) -> str:
    """Absolute, lower-case, IDNA-encoded text form; DnsError for names DNS cannot hold."""
    try:
        text = dns.name.from_text(name).to_text().lower()
    except dns.exception.DNSException as err:
        raise DnsError(f"invalid DNS name {name!r}: {err}", name=name) from None
    if text == ".":  # "" parses as the root, which is never a mail destination
        raise DnsError(f"invalid DNS name {name!r}: empty", name=name)
    return text


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
        self.negative_ttl = negative_ttl
        #: Names from the hosts file, answered before DNS (None: DNS alone).
        self.hosts = hosts
        self._clock = clock
        self._cache = _TtlCache(cache_size, clock)
        self._cache_size = cache_size
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
        if not name_servers:
            raise ConfigError("name_servers: at least one name server is required")
        servers = [parse_name_server(spec) for spec in name_servers]
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"timeout: must be a positive number of seconds, got {timeout!r}")
        self._dns.nameservers = servers
        self.validate = validate
        # RFC 6840 §5.7: AD in a query asks the server to report validation in the reply.
        self._dns.flags = dns.flags.RD | dns.flags.AD if validate else None
        self._apply_timeout(self._timeout if timeout is None else timeout)
        self._generation += 1
        self._cache.clear()
        self._inflight.clear()

    def _apply_timeout(self, timeout: float) -> None:
        self._timeout = timeout
        # ``lifetime`` bounds the whole lookup (retries included), which is what a caller
        # waiting to deliver cares about.
        self._dns.timeout = timeout
        self._dns.lifetime = timeout

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
        answer = await self._query(name, "MX")
        if answer.status == "nxdomain":
            raise DnsError(f"MX lookup for {name} failed: NXDOMAIN", name=name)
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
        listed = self.hosts.lookup(name) if self.hosts is not None else None
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
            result = await self._dns.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            answer = _Answer("nxdomain", (), self._clock() + self.negative_ttl)
        except dns.exception.DNSException as err:
            # Anything but NXDOMAIN (timeouts, SERVFAIL, REFUSED...) may heal: retry later.
            reason = (
                f"timed out after {self._timeout}s"
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
                answer = _Answer("nodata", (), self._clock() + self.negative_ttl, secure)
            else:
                # ``expiration`` already accounts for the lowest TTL along a CNAME chain.
                ttl = max(0.0, result.expiration - time.time())
                records = tuple(_convert(rdtype, rdata) for rdata in result.rrset)
                secure = self.validate and bool(result.response.flags & dns.flags.AD)
                answer = _Answer("ok", records, self._clock() + ttl, secure)
        # Transient failures are deliberately not cached: the next attempt asks again.
        if generation == self._generation:
            self._cache.put((name, rdtype), answer)
        return answer
