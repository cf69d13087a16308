"""``MailExchanger``: where mail for a destination domain goes, as KumoMTA models it.

This module is pure: it turns a destination (``gmail.com``, ``example.com:2525``,
``[192.0.2.1]``) plus the MX records the resolver found into the value that delivery and
policy see. The DNS round trips live in :mod:`kumocore.dns.resolver`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kumocore.dns.site_name import factor_names, split_port

#: The exchange of a null MX record (RFC 7505): the domain accepts no mail at all.
NULL_MX_HOST = "."


def domain_literal_address(domain: str) -> str | None:
    """The IP address of an RFC 5321 domain literal, or None when ``domain`` is a name.

    ``[192.0.2.1]`` and ``[IPv6:2001:db8::1]`` are the standard forms; ``[2001:db8::1]``
    (no tag) is accepted too because KumoMTA accepts it and senders do produce it.
    Raises ValueError when the brackets hold something that is not an address.
    """
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    inner = domain[1:-1]
    if inner[:5].lower() == "ipv6:":
        inner = inner[5:]
    try:
        return str(ipaddress.ip_address(inner))
    except ValueError:
        raise ValueError(f"invalid domain literal {domain!r}: not an IP address") from None


def fully_qualify(name: str) -> str:
    """Lower-case ``name`` and give it exactly one trailing dot (``Gmail.COM`` → ``gmail.com.``)."""
    return name.lower().rstrip(".") + "."


@dataclass(frozen=True)
class MailExchanger:
    """The resolved MX set of one destination.

    ``hosts`` is ordered by preference, then by name, which is the order that
    :func:`~kumocore.dns.site_name.factor_names` relies on; ``by_pref`` keeps the grouping
    the delivery client needs (try lowest preference first, shuffle within a level).
    """

    domain_name: str
    hosts: list[str]
    site_name: str
    by_pref: dict[int, list[str]]
    is_domain_literal: bool = False
    #: DNSSEC validated. kumocore does not validate DNSSEC, so this is always False.
    is_secure: bool = False
    #: False for domain literals and for the implicit MX (a domain without MX records).
    is_mx: bool = True
    #: The MTA-STS mode applied to this set (kumocore.delivery.mta_sts): "none",
    #: "testing" or "enforce" (then ``hosts`` holds only those the policy allows).
    mta_sts: str = "none"

    @classmethod
    def for_literal(cls, domain: str, address: str) -> MailExchanger:
        """A domain literal: no DNS at all, the address is both the host and the site."""
        return cls(
            domain_name=domain,
            hosts=[address],
            site_name=address,
            by_pref={1: [address]},
            is_domain_literal=True,
            is_mx=False,
        )

    @classmethod
    def implicit(cls, domain_name: str, port: int | None = None) -> MailExchanger:
        """No MX records (NODATA): RFC 5321 §5.1 says deliver to the domain's own address."""
        name = fully_qualify(domain_name)
        return cls._build(name, {1: [name]}, port, is_mx=False)

    @classmethod
    def from_records(
        cls, domain_name: str, records: Iterable[tuple[int, str]], port: int | None = None
    ) -> MailExchanger:
        """Build from ``(preference, exchange)`` MX records, in any order.

        Hosts are normalised (lower-case, trailing dot), grouped by preference and sorted by
        name within each preference, as KumoMTA does, so that the same record set always
        yields the same ``site_name`` whatever order the DNS server answered in.
        """
        by_pref: dict[int, list[str]] = {}
        for pref, exchange in records:
            host = NULL_MX_HOST if exchange in ("", NULL_MX_HOST) else fully_qualify(exchange)
            by_pref.setdefault(int(pref), []).append(host)
        ordered = {pref: sorted(by_pref[pref]) for pref in sorted(by_pref)}
        return cls._build(fully_qualify(domain_name), ordered, port, is_mx=True)

    @classmethod
    def _build(
        cls, domain_name: str, by_pref: dict[int, list[str]], port: int | None, *, is_mx: bool
    ) -> MailExchanger:
        if port is not None:
            # ``example.com:2525`` sends to port 2525 of every MX host; the port is part of
            # the host (and so of the site name) exactly as in KumoMTA.
            by_pref = {
                pref: [h if h == NULL_MX_HOST else f"{h}:{port}" for h in hosts]
                for pref, hosts in by_pref.items()
            }
        hosts = [host for group in by_pref.values() for host in group]
        return cls(
            domain_name=domain_name,
            hosts=hosts,
            site_name=factor_names(hosts),
            by_pref=by_pref,
            is_mx=is_mx,
        )

    @property
    def is_null_mx(self) -> bool:
        """The domain published ``MX 0 .``: it accepts no mail, so don't try to deliver."""
        return NULL_MX_HOST in self.hosts

    def host_port(self, host: str) -> tuple[str, int | None]:
        """Split one of ``hosts`` into the name to resolve and the optional port."""
        if self.is_domain_literal:
            return host, None
        return split_port(host)

    def to_policy_table(self) -> dict[str, Any]:
        """The table ``kumo.dns.lookup_mx`` returns, with KumoMTA's field names.

        Lists are copied so that a policy mutating its table cannot alter this value.
        """
        return {
            "domain_name": self.domain_name,
            "hosts": list(self.hosts),
            "site_name": self.site_name,
            "by_pref": {pref: list(hosts) for pref, hosts in self.by_pref.items()},
            "is_domain_literal": self.is_domain_literal,
            "is_secure": self.is_secure,
            "is_mx": self.is_mx,
        }
