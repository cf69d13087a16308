"""The DNS side of one SPF check: kumocore's resolver plus the limits of RFC 7208 §4.6.4.

Every query goes through :class:`SpfDns`, which owns the counters that protect the server
from hostile records: at most 10 DNS-querying terms (``include``, ``a``, ``mx``, ``ptr``,
``exists``, ``redirect``), at most 2 "void" lookups (NXDOMAIN or no answer), at most 10 MX
hosts per ``mx``, and at most 10 PTR names validated. Timeouts and SERVFAIL become
``temperror``; NXDOMAIN is an empty answer, as §5 asks.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import dns.reversename

from kumocore.dns.dnspython_records import normalize_name
from kumocore.dns.errors import DnsError
from kumocore.dns.resolver import Resolver
from kumocore.spf.result import SpfAbort

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_DNS_TERMS = 10
MAX_VOID_LOOKUPS = 2
MAX_MX_HOSTS = 10
MAX_PTR_NAMES = 10


def valid_name(name: str) -> bool:
    """Whether ``name`` can be asked of DNS at all (labels of 1..63, at most 253 chars)."""
    try:
        normalize_name(name)
    except DnsError:
        return False
    return True


class SpfDns:
    """Budgeted lookups for one check (shared by every ``include`` and ``redirect`` in it)."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.terms = 0
        self.voids = 0

    def count_term(self, term: str) -> None:
        """Charge one DNS-querying term; the 11th is a permerror."""
        self.terms += 1
        if self.terms > MAX_DNS_TERMS:
            raise SpfAbort(
                "permerror",
                f"DNS lookup limits exceeded: {term!r} would be DNS-querying term number "
                f"{self.terms}, more than {MAX_DNS_TERMS}")

    def _void(self, name: str) -> None:
        self.voids += 1
        if self.voids > MAX_VOID_LOOKUPS:
            raise SpfAbort(
                "permerror",
                f"void lookup limit exceeded: {name} is the {self.voids}th lookup without an "
                f"answer, more than {MAX_VOID_LOOKUPS}")

    async def _query(self, name: str, rdtype: str, *, counts_void: bool) -> list[Any]:
        if not valid_name(name):
            # Nothing to ask: for a mechanism this is a name that cannot exist.
            if counts_void:
                self._void(name)
            return []
        try:
            records = await self.resolver.lookup_records(name, rdtype)
        except DnsError as err:
            raise SpfAbort("temperror", str(err)) from None
        if not records and counts_void:
            self._void(name)
        return list(records or [])

    async def txt(self, name: str) -> list[str] | None:
        """The TXT records of ``name``; None when the name does not exist."""
        try:
            records = await self.resolver.lookup_records(name, "TXT")
        except DnsError as err:
            raise SpfAbort("temperror", str(err)) from None
        return None if records is None else [str(text) for text in records]

    async def addresses(self, name: str, ip: IpAddress, *, counts_void: bool) -> list[IpAddress]:
        """``A`` records for an IPv4 client, ``AAAA`` for an IPv6 one (§5)."""
        rdtype = "A" if ip.version == 4 else "AAAA"
        records = await self._query(name, rdtype, counts_void=counts_void)
        return [ipaddress.ip_address(str(address)) for address in records]

    async def exists(self, name: str) -> bool:
        """``exists``: any ``A`` record, whatever the client's address family (§5.7)."""
        return bool(await self._query(name, "A", counts_void=True))

    async def mx_hosts(self, name: str) -> list[str]:
        """The MX host names of ``name`` (no implicit MX: §5.4); more than 10 is a permerror."""
        records = await self._query(name, "MX", counts_void=True)
        hosts = [str(exchange) for _pref, exchange in sorted(records)]
        if len(hosts) > MAX_MX_HOSTS:
            raise SpfAbort("permerror", f"too many MX records for {name}: {len(hosts)}, "
                                        f"more than {MAX_MX_HOSTS}")
        return [host for host in hosts if host.strip(".")]  # a null MX names no host

    async def validated_names(self, ip: IpAddress) -> list[str]:
        """The client's PTR names whose addresses include ``ip`` (§5.5), first 10 only.

        A DNS error on the PTR query means no names; one on an address query skips that name.
        """
        reverse = dns.reversename.from_address(str(ip)).to_text()
        try:
            names = await self._query(reverse, "PTR", counts_void=True)
        except SpfAbort as abort:
            if abort.disposition == "temperror":
                return []
            raise
        validated = []
        for name in [str(n).rstrip(".").lower() for n in names][:MAX_PTR_NAMES]:
            try:
                found = await self.addresses(name, ip, counts_void=False)
            except SpfAbort:
                continue
            if ip in found:
                validated.append(name)
        return validated
