"""``kumo.dns.reverse_ip`` and ``kumo.dns.ptr_host``: reverse-DNS names of an address.

Pure string work, no query: IPv4 octets, or IPv6 nibbles (all 32, lower-case hex), in
reverse order, and for ``ptr_host`` the ``in-addr.arpa``/``ip6.arpa`` suffix, as KumoMTA
writes them. The address must be written as Rust's ``IpAddr`` parser accepts it: no zone
(``%eth0``), no port, no brackets, no leading zeros in IPv4 octets. Anything else is
refused with KumoMTA's text, ``invalid IP address syntax``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(text: Any) -> IPAddress:
    """``text`` as an address, or ``ValueError("invalid IP address syntax")``."""
    # Python's parser accepts integers, bytes and a '%zone' suffix; Rust's does not.
    if not isinstance(text, str) or "%" in text:
        raise ValueError("invalid IP address syntax")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError("invalid IP address syntax") from None


def reverse_ip(ip: Any) -> str:
    """The address reversed for a reverse-DNS name, no query made: ``'127.0.0.1'`` ->
    ``1.0.0.127``; IPv6 as its 32 nibbles, last first. A bad address fails with
    ``invalid IP address syntax``."""
    address = parse_ip(ip)
    if address.version == 4:
        return ".".join(str(octet) for octet in reversed(address.packed))
    return ".".join(reversed(address.packed.hex()))


def ptr_host(ip: Any) -> str:
    """The PTR name of the address, no query made: ``'127.0.0.1'`` ->
    ``1.0.0.127.in-addr.arpa``; IPv6 names end in ``ip6.arpa``."""
    address = parse_ip(ip)
    suffix = "in-addr.arpa" if address.version == 4 else "ip6.arpa"
    return f"{reverse_ip(ip)}.{suffix}"


def reverse_dns_functions() -> dict[str, Callable[..., Any]]:
    return {"dns.reverse_ip": reverse_ip, "dns.ptr_host": ptr_host}
