"""DANE for outbound SMTP (RFC 7672): KumoMTA's ``enable_dane`` egress path option.

For each MX address it is about to connect to, delivery asks :func:`decide` what the
destination's TLSA records say, then connects in the TLS mode that follows:

====================================  =====================  =================================
chain to the MX host                  ``_PORT._tcp.HOST``    outcome (``result``)
====================================  =====================  =================================
MX or address records not secure      not asked              the path's own TLS policy
                                                             (``insecure_chain``)
secure                                usable DANE-TA/EE      ``Required``; the certificate must
                                                             match a record (``ok``)
secure                                only unusable records  ``RequiredInsecure``: STARTTLS,
                                                             certificate not checked
                                                             (``unusable``)
secure                                none, or not secure    the path's own TLS policy
                                                             (``not_applicable``)
secure                                lookup failed          deferred, nothing sent
                                                             (``tempfail``)
====================================  =====================  =================================

"Secure" means the AD bit of a resolver marked as validating DNSSEC
(``kumo.dns.configure_resolver { options = { validate = true } }``, see
:mod:`kumocore.dns.resolver`); without one, asking for DANE is refused. The certificate
check itself is :mod:`kumocore.delivery.dane_match`.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kumocore.dns.errors import DnsError
from kumocore.errors import ConfigError
from kumocore.mail.response import Response

if TYPE_CHECKING:
    from kumocore.dns.mx import MailExchanger
    from kumocore.dns.resolver import Resolver

#: KumoMTA's ``dane_result_count`` labels.
RESULTS = ("ok", "unusable", "not_applicable", "insecure_chain", "tempfail")


def new_dane_counts() -> Counter[str]:
    """A node's DANE decisions by ``result`` (``dane_result_count`` on /metrics); the
    queue manager owns one."""
    return Counter({result: 0 for result in RESULTS})


#: Digest lengths of the matching types 1 (SHA2-256) and 2 (SHA2-512); 0 is the raw data.
_DIGEST_LENGTHS = {0: None, 1: 32, 2: 64}


@dataclass(frozen=True, slots=True)
class Tlsa:
    """One TLSA record: certificate usage, selector, matching type, association data."""

    usage: int
    selector: int
    mtype: int
    data: bytes

    @property
    def usable(self) -> bool:
        """RFC 7672 §3.1.3: only DANE-TA(2) and DANE-EE(3), with a selector (0 full
        certificate, 1 public key) and matching type (0, 1, 2) we know, and a digest of
        the right length."""
        if self.usage not in (2, 3) or self.selector not in (0, 1):
            return False
        if self.mtype not in _DIGEST_LENGTHS:
            return False
        length = _DIGEST_LENGTHS[self.mtype]
        return length is None or len(self.data) == length

    def __str__(self) -> str:
        hexdata = self.data.hex()
        shown = hexdata if len(hexdata) <= 16 else hexdata[:16] + "..."
        return f"{self.usage} {self.selector} {self.mtype} {shown}"


@dataclass(frozen=True, slots=True)
class DanePolicy:
    """What DANE decided for one MX host (and the address about to be used)."""

    result: str
    host: str
    port: int
    records: tuple[Tlsa, ...] = ()
    #: The address came from DNSSEC-validated records (KumoMTA's ``is_secure``).
    address_secure: bool = False

    @property
    def base_name(self) -> str:
        """``_25._tcp.mx.example.com``: where the TLSA records live."""
        return f"_{self.port}._tcp.{self.host.rstrip('.')}"

    @property
    def checks_certificate(self) -> bool:
        return self.result == "ok"

    def tls_mode(self, mode: str) -> str:
        """The TLS mode to connect in, given the path's (after MTA-STS) ``mode``.

        Usable records: ``Required``, with the certificate checked against them instead
        of the public CAs. Unusable ones: STARTTLS is mandatory but unauthenticated
        (``RequiredInsecure``), unless the path already demands a verified certificate.
        """
        if self.result == "ok":
            return "Required"
        if self.result == "unusable":
            return "Required" if mode == "Required" else "RequiredInsecure"
        return mode


def require_validating_resolver(resolver: Resolver) -> None:
    """``enable_dane = true`` is meaningless without DNSSEC: refuse it, saying how to fix."""
    if not resolver.validate:
        raise ConfigError(
            "kumo.make_egress_path: enable_dane = true needs a DNSSEC-validating resolver, "
            "and none is configured: call kumo.dns.configure_resolver { name_servers = "
            "{ 'IP:PORT' }, options = { validate = true } } in the init event, naming "
            "validating name servers you trust (their AD bit is believed)")


def _defer(counts: Counter[str], text: str) -> Response:
    counts["tempfail"] += 1
    return Response.parse(451, f"4.7.5 DANE: {text}")


def selection_secure(mx: MailExchanger | None, treat_mx_list_as_secure: bool) -> bool:
    """Whether the choice of MX hosts is authenticated: a DNSSEC-validated MX RRset, or
    (no MX lookup: an ``mx_list``) what the queue's ``treat_mx_list_as_secure`` says."""
    if mx is None:
        return treat_mx_list_as_secure
    return mx.is_secure and not mx.is_domain_literal


async def decide(
    resolver: Resolver,
    host: str,
    address: str,
    port: int,
    *,
    secure_selection: bool,
    counts: Counter[str],
    preresolved: bool = False,
) -> DanePolicy | Response:
    """DANE for connecting to ``host`` at ``address``:``port`` (``secure_selection``: see
    :func:`selection_secure`); a 4xx Response when the delivery must be deferred (never a
    fallback to less security). The decision is counted in ``counts``."""
    if not resolver.validate:
        return Response.parse(
            451, "4.7.0 DANE: enable_dane is set but the resolver is not marked as "
            "validating DNSSEC (kumo.dns.configure_resolver options.validate)")
    policy = DanePolicy("insecure_chain", host, port)
    literal = _is_ip(host)
    if preresolved or literal or not secure_selection:
        # A pre-resolved address, an IP literal or an MX set that was not validated: the
        # host name itself is not authenticated, so its TLSA records could be anybody's.
        counts["insecure_chain"] += 1
        return policy
    try:
        address_secure = await _address_secure(resolver, host, address)
        eligible = address_secure or await _secure_alias(resolver, host)
    except DnsError as err:
        return _defer(counts, f"{err}; the DNSSEC status of {host.rstrip('.')} is unknown")
    if not eligible:
        counts["insecure_chain"] += 1
        return policy
    try:
        answer = await resolver.lookup_dnssec(policy.base_name, "TLSA")
    except DnsError as err:
        # Downgrade resistance (RFC 7672 §2.2): an unknown TLSA status defers.
        return _defer(counts, f"{err}; without a secure answer (records or their absence) "
                      f"{host.rstrip('.')} is not tried")
    records = tuple(Tlsa(*record) for record in answer.records)
    if answer.status != "ok" or not answer.secure or not records:
        result = "not_applicable"
        usable: tuple[Tlsa, ...] = ()
    else:
        usable = tuple(record for record in records if record.usable)
        result = "ok" if usable else "unusable"
    counts[result] += 1
    return DanePolicy(result, host, port, usable, address_secure=address_secure)


async def _address_secure(resolver: Resolver, host: str, address: str) -> bool:
    """Whether ``address`` is in a DNSSEC-validated A/AAAA RRset of ``host`` (cached: the
    addresses were just resolved). A CNAME into an unsigned zone is not secure."""
    rdtype = "AAAA" if ":" in address else "A"
    answer = await resolver.lookup_dnssec(host, rdtype)
    if not answer.secure:
        return False
    wanted = ipaddress.ip_address(address)
    return any(ipaddress.ip_address(record) == wanted for record in answer.records)


async def _secure_alias(resolver: Resolver, host: str) -> bool:
    """RFC 7672 §2.2.2: a securely published CNAME whose target lies in an unsigned zone
    still makes its TLSA records (at the original name) count. Asked on its own, the CNAME
    RRset's AD bit reflects only the alias's zone."""
    answer = await resolver.lookup_dnssec(host, "CNAME")
    return answer.status == "ok" and bool(answer.records) and answer.secure


def _is_ip(host: str) -> bool:
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        return False
    return True
