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

from kumocore.dns.site_name import factor_names, split_bracketed, split_port
from kumocore.dns.unix_path import unix_socket_path

#: The exchange of a null MX record (RFC 7505): the domain accepts no mail at all.
NULL_MX_HOST = "."
#: ``mta_sts`` as KumoMTA's table shows it (its ``PolicyMode`` serialized by name).
POLICY_MODE_NAMES = {"none": "None", "testing": "Testing", "enforce": "Enforce"}


def domain_literal(domain: str) -> tuple[str, int | None] | None:
    """The IP address and optional port of an RFC 5321 domain literal, or None when
    ``domain`` is a name (``name`` or ``name:port``), classified as KumoMTA's resolver does.

    ``[192.0.2.1]`` and ``[IPv6:2001:db8::1]`` are the standard forms; ``[2001:db8::1]``
    (no tag) is accepted too because KumoMTA accepts it and senders do produce it. A port
    may follow the brackets (``[192.0.2.1]:2525``) or, as KumoMTA also reads it, sit
    inside them (``[192.0.2.1:2525]``), not both. The port rule is KumoMTA's: digits after
    a last colon whose left side holds no colon, so an IPv6 literal never has a port
    (``[::1]:25`` is malformed, ``[::1:25]`` is the address ``::1:25``).
    Raises ValueError when the brackets hold something that is not an address.
    """
    name, port = split_port(domain)
    if not name.startswith("["):
        return None
    if not name.endswith("]"):
        raise ValueError(f"invalid domain literal {domain!r}: no closing ']'")
    # A port inside means none outside: ``[IP:P]:Q`` has a colon before ``:Q``.
    inner, inner_port = split_port(name[1:-1].lower())
    port = port if inner_port is None else inner_port
    tagged = inner.startswith("ipv6:")
    try:
        address = ipaddress.ip_address(inner.removeprefix("ipv6:"))
    except ValueError:
        raise ValueError(f"invalid domain literal {domain!r}: not an IP address") from None
    if tagged and address.version != 6:
        raise ValueError(f"invalid domain literal {domain!r}: not an IPv6 address")
    return str(address), port


def domain_literal_address(domain: str) -> str | None:
    """The IP address of a domain literal (see :func:`domain_literal`), without its port."""
    literal = domain_literal(domain)
    return None if literal is None else literal[0]


@dataclass(frozen=True)
class MxTarget:
    """One host to try: a name to resolve (or an IP), or a pre-resolved address.

    ``label`` is how KumoMTA shows an ``mx_list`` entry in the synthesized site name: the
    string as written, or the address (with its port) of a ``{ name, addr }`` table.
    """

    name: str
    address: str | None = None
    port: int | None = None
    label: str = ""


def _split_address(text: str) -> tuple[str, int | None]:
    """``10.0.0.1``, ``10.0.0.1:25``, ``[::1]:25``, ``::1`` → address and optional port."""
    if text.startswith("["):
        try:
            text, port = split_bracketed(text)
        except ValueError:
            raise ValueError(f"invalid address {text!r}") from None
    else:
        host, port = split_port(text)
        text = host
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"invalid port in {text!r}")
    return str(ipaddress.ip_address(text.removeprefix("IPv6:").removeprefix("ipv6:"))), port


def parse_mx_list_entry(entry: Any) -> MxTarget:
    """One entry of ``protocol = { smtp = { mx_list = {...} } }``, in KumoMTA's forms:
    ``'mx.example.com'``, ``'mx.example.com:2025'``, ``'[10.0.0.1]'`` (``'[10.0.0.1]:2025'``)
    or ``{ name = 'mx.example.com', addr = '10.0.0.1:2025' }``."""
    if isinstance(entry, str) and entry:
        if (path := unix_socket_path(entry)) is not None:  # '/run/lmtp.sock', '[/run/...]'
            return MxTarget(name=entry, address=path, label=entry)
        if entry.startswith("["):
            address, port = _split_address(entry)
            return MxTarget(name=address, address=address, port=port, label=entry)
        host, port = split_port(entry)
        if not host or any(c.isspace() for c in host):
            raise ValueError("expected a host name, '[IP]' or 'host:port'")
        return MxTarget(name=host.rstrip("."), port=port, label=entry)
    if isinstance(entry, dict) and set(entry) == {"name", "addr"}:
        name, addr = entry["name"], entry["addr"]
        if not isinstance(name, str) or not isinstance(addr, str):
            raise ValueError("expected { name = 'host', addr = 'IP[:port]' } with strings")
        if (path := unix_socket_path(addr)) is not None:
            return MxTarget(name=name.rstrip("."), address=path, label=path)
        address, port = _split_address(addr)
        shown = (
            f"[{address}]:{port}"
            if ":" in address and port
            else (f"{address}:{port}" if port else address)
        )
        return MxTarget(name=name.rstrip("."), address=address, port=port, label=shown)
    raise ValueError("expected a host name, '[IP]', 'host:port' or { name = ..., addr = ... }")


def order_addresses(addresses: list[str], strategy: str) -> list[str]:
    """Addresses to try per KumoMTA's ``ip_lookup_strategy``: ``Ipv4Only``/``Ipv6Only``
    keep one family; ``Ipv6ThenIpv4`` keeps the IPv6 addresses, or the IPv4 ones when there
    is none, and ``Ipv4ThenIpv6`` the other way round (KumoMTA asks for the second family
    only when the first gave no address); the default ``Ipv4AndIpv6`` keeps both, IPv4
    first (the order kumocore's resolver returns)."""
    v4 = [a for a in addresses if ":" not in a]
    v6 = [a for a in addresses if ":" in a]
    if strategy == "Ipv6ThenIpv4":
        return v6 or v4
    if strategy == "Ipv4ThenIpv6":
        return v4 or v6
    return {"Ipv4Only": v4, "Ipv6Only": v6}.get(strategy, v4 + v6)


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
    #: The MX RRset came with the AD bit from a resolver marked ``validate`` (for DANE).
    is_secure: bool = False
    #: False for domain literals and for the implicit MX (a domain without MX records).
    is_mx: bool = True
    #: The MTA-STS mode applied to this set (kumocore.delivery.mta_sts): "none",
    #: "testing" or "enforce" (then ``hosts`` holds only those the policy allows).
    mta_sts: str = "none"

    @classmethod
    def for_literal(cls, domain: str, address: str, port: int | None = None) -> MailExchanger:
        """A domain literal: no DNS at all, the address (with the literal's port, as
        ``10.0.0.1:2525``) is both the host and the site."""
        # Only an IPv4 literal can carry a port (KumoMTA's rule, see domain_literal).
        host = address if port is None else f"{address}:{port}"
        return cls(
            domain_name=domain,
            hosts=[host],
            site_name=host,
            by_pref={1: [host]},
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
        # ``10.0.0.1:2525`` (a literal with a port) splits; an IPv6 address does not.
        return split_port(host)

    def targets(self) -> list[MxTarget]:
        """The hosts to try, in order, with any port of ``example.com:2525`` split off."""
        result = []
        for host in self.hosts:
            if host == NULL_MX_HOST:
                continue
            name, port = self.host_port(host)
            result.append(MxTarget(name=name.rstrip("."), port=port, label=host))
        return result

    def to_policy_table(self) -> dict[str, Any]:
        """The table ``kumo.dns.lookup_mx`` returns: KumoMTA's fields, all of them (its
        ``expires`` is never serialized, so a policy does not see it there either).

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
            "mta_sts": POLICY_MODE_NAMES[self.mta_sts],
        }
