"""``check_host()`` of RFC 7208 §4: fetch the record, walk its directives, follow
``include`` and ``redirect``, and explain a ``fail`` with ``exp``.

One :class:`_Check` serves a whole evaluation, nested includes and redirects included, so
the DNS budget of :class:`~kumocore.spf.lookups.SpfDns` is shared by all of them and an
include loop ends at the eleventh DNS-querying term. The whole check is also bounded in
time (:data:`CHECK_TIMEOUT`): past it the result is a ``temperror``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass

from kumocore.dns.resolver import Resolver
from kumocore.spf.lookups import IpAddress, SpfDns, valid_name
from kumocore.spf.macros import (
    MacroString,
    MacroValues,
    expand,
    parse_macro_string,
    truncate_name,
)
from kumocore.spf.record import (
    DNS_MECHANISMS,
    Directive,
    Mechanism,
    Record,
    is_spf_record,
    parse_record,
)
from kumocore.spf.result import QUALIFIERS, SpfAbort, SpfResult, SpfSyntaxError

#: Seconds one whole check may take (RFC 7208 §4.6.4 asks for an overall limit).
CHECK_TIMEOUT = 20.0
#: Explanations longer than this, or not printable ASCII, are not used (§6.2).
MAX_EXPLANATION = 512


@dataclass(frozen=True, slots=True)
class CheckHostParams:
    """The inputs of ``check_host()``: which domain, for which sender, from which IP."""

    domain: str
    client_ip: str
    #: The MAIL FROM address; None checks the HELO identity as ``postmaster@domain``.
    sender: str | None = None
    helo: str | None = None
    #: This host's name, for the ``%{r}`` macro.
    receiver: str | None = None


def client_address(text: str) -> IpAddress:
    """The client IP; an IPv4-mapped IPv6 address counts as IPv4 (§5)."""
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _initial_domain_ok(domain: str) -> bool:
    """§4.3: a syntactically valid multi-label name, else the result is ``none``."""
    labels = domain.rstrip(".").split(".")
    return len(labels) >= 2 and all(labels) and valid_name(domain)


class _Check:
    def __init__(self, resolver: Resolver, params: CheckHostParams, ip: IpAddress) -> None:
        self.dns = SpfDns(resolver)
        self.ip = ip
        sender = params.sender or f"postmaster@{params.domain}"
        if sender.startswith("@"):
            sender = "postmaster" + sender
        self.sender = sender
        self.helo = params.helo or "unknown"
        self.receiver = params.receiver or "unknown"
        self.now = int(time.time())
        self._validated: list[str] | None = None

    def values(self, domain: str) -> MacroValues:
        return MacroValues(self.sender, domain, self.ip, self.helo, self.receiver, self.now,
                           self._validated_name)

    async def _validated_names(self) -> list[str]:
        if self._validated is None:  # one reverse lookup per check, however often asked
            self._validated = await self.dns.validated_names(self.ip)
        return self._validated

    async def _validated_name(self, domain: str) -> str:
        """``%{p}``: the validated name, preferring ``domain`` or a subdomain (§7.3)."""
        try:
            names = await self._validated_names()
        except SpfAbort:
            return "unknown"
        domain = domain.rstrip(".").lower()
        for wanted in (lambda n: n == domain, lambda n: n.endswith("." + domain), bool):
            for name in names:
                if wanted(name):
                    return name
        return "unknown"

    async def target(self, spec: MacroString | None, domain: str) -> str:
        if spec is None:
            return domain
        return truncate_name(await expand(spec, self.values(domain)))

    # ------------------------------------------------------------------ records

    async def check(self, domain: str, *, explain: bool) -> SpfResult:
        """§4.4 to 4.7 for ``domain``; temperror/permerror leave as :class:`SpfAbort`."""
        if not valid_name(domain):
            return SpfResult("none", f"invalid domain name: {domain}")
        # A domain that does not exist (NXDOMAIN, None here) has no records either: KumoMTA
        # tests for an empty answer before it looks at NXDOMAIN, so both read the same.
        found = await self.dns.txt(domain) or []
        records = [text for text in found if is_spf_record(text)]
        if not records:
            return SpfResult("none", f"no SPF records found for {domain}")
        if len(records) > 1:
            raise SpfAbort("permerror", f"{len(records)} SPF records found for {domain}")
        try:
            record = parse_record(records[0])
        except SpfSyntaxError as err:
            raise SpfAbort("permerror", f"failed to parse spf record of {domain}: {err}") from None
        return await self.evaluate(record, domain, explain=explain)

    async def evaluate(self, record: Record, domain: str, *, explain: bool) -> SpfResult:
        for directive in record.directives:
            if await self.matches(directive.mechanism, domain):
                return await self._matched(directive, record, domain, explain=explain)
        if record.redirect is not None and not record.has_all:
            self.dns.count_term(f"redirect={record.redirect.text}")
            target = await self.target(record.redirect, domain)
            # The target's own exp (not ours) explains its fail (§6.2).
            result = await self.check(target, explain=explain)
            if result.disposition == "none":
                raise SpfAbort("permerror", f"redirect={target}: {result.reason}")
            return result
        return SpfResult("neutral", "default result")

    async def _matched(
        self, directive: Directive, record: Record, domain: str, *, explain: bool
    ) -> SpfResult:
        disposition = QUALIFIERS[directive.qualifier]
        reason = f"matched '{directive.text}' directive"
        if disposition == "fail" and explain and record.exp is not None:
            reason = await self._explanation(record.exp, domain) or reason
        return SpfResult(disposition, reason)

    async def _explanation(self, spec: MacroString, domain: str) -> str | None:
        """§6.2: the one TXT record at the exp target, macro-expanded; None if unusable."""
        try:
            name = await self.target(spec, domain)
            found = await self.dns.txt(name)
            if found is None or len(found) != 1:
                return None
            text = await expand(parse_macro_string(found[0], exp=True), self.values(domain))
        except (SpfAbort, SpfSyntaxError):
            return None
        if len(text) > MAX_EXPLANATION or not all(0x20 <= ord(c) < 0x7F for c in text):
            return None
        return text

    # ------------------------------------------------------------------ mechanisms

    async def matches(self, mechanism: Mechanism, domain: str) -> bool:
        kind = mechanism.kind
        if kind not in DNS_MECHANISMS:  # all (no network), ip4, ip6: no DNS, no charge
            return mechanism.network is None or self.ip in mechanism.network
        self.dns.count_term(f"{kind}:{mechanism.domain.text}" if mechanism.domain else kind)
        target = await self.target(mechanism.domain, domain)
        if kind == "include":
            return await self._include(target)
        if kind == "exists":
            return await self.dns.exists(target)
        if kind == "ptr":
            target = target.rstrip(".").lower()
            return any(name == target or name.endswith("." + target)
                       for name in await self._validated_names())
        if kind == "a":
            hosts = [target]
        else:
            hosts = await self.dns.mx_hosts(target)
        for host in hosts:
            found = await self.dns.addresses(host, self.ip, counts_void=kind == "a")
            if any(self._in_cidr(address, mechanism) for address in found):
                return True
        return False

    def _in_cidr(self, address: IpAddress, mechanism: Mechanism) -> bool:
        if address.version != self.ip.version:
            return False
        length = mechanism.cidr4 if address.version == 4 else mechanism.cidr6
        return self.ip in ipaddress.ip_network(f"{address}/{length}", strict=False)

    async def _include(self, target: str) -> bool:
        """§5.2: pass matches; fail, softfail and neutral do not; none is a permerror."""
        try:
            result = await self.check(target, explain=False)
        except SpfAbort as abort:
            if abort.reason.startswith("include:"):
                raise  # the innermost include already names itself
            raise SpfAbort(abort.disposition, f"include:{target}: {abort.reason}") from None
        if result.disposition == "none":
            raise SpfAbort("permerror", f"include:{target}: {result.reason}")
        return result.disposition == "pass"


async def check_host(
    resolver: Resolver, params: CheckHostParams, *, timeout: float = CHECK_TIMEOUT
) -> SpfResult:
    """Evaluate SPF for ``params``; never raises for DNS or record trouble."""
    try:
        ip = client_address(params.client_ip)
    except ValueError:
        raise ValueError(f"SPF: {params.client_ip!r} is not an IP address") from None
    domain = params.domain.rstrip(".") if params.domain else (params.helo or "")
    if not _initial_domain_ok(domain):
        return SpfResult("none", f"invalid domain name: {domain}")
    check = _Check(resolver, CheckHostParams(domain, params.client_ip, params.sender,
                                             params.helo, params.receiver), ip)
    try:
        return await asyncio.wait_for(check.check(domain, explain=True), timeout)
    except SpfAbort as abort:
        return abort.result()
    except TimeoutError:
        return SpfResult("temperror", f"SPF evaluation took longer than {timeout:g}s")
