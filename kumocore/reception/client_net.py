"""What the per-client limits count as one client: an IPv4 address, or an IPv6 /64.

``max_connections_per_peer``, the AUTH failure limits and the DATA budget's per-client
share (SMTP), and ``max_connections_per_peer`` and the Basic-auth failure limit (HTTP)
count per client. A host on IPv6 is handed a whole /64 (a subscriber line, a cloud
instance) and may connect from any of its 2^64 addresses, so counted per address those
limits did not limit one machine at all: 60 connections from 60 addresses of one /64
were 60 first connections. They are counted per /64 now. Postfix 3.8 aggregates its
client limits the same way (``smtpd_client_ipv6_prefix_length``, /84 there); a /64 is
the smallest block a provider gives one customer. An IPv4 address mapped into IPv6
(``::ffff:192.0.2.1``) is that IPv4 address.
"""

from __future__ import annotations

import functools
import ipaddress

__all__ = ["IPV6_PREFIX", "client_net"]

#: The IPv6 prefix length counted as one client.
IPV6_PREFIX = 64


@functools.lru_cache(maxsize=4096)
def client_net(ip: str) -> str:
    """The key ``ip`` is counted under: itself for IPv4 (and anything that is not an
    address), ``2001:db8:1:2::/64`` for an IPv6 address in that /64."""
    if ":" not in ip:
        return ip
    try:
        address = ipaddress.IPv6Address(ip.partition("%")[0])  # no zone in the count
    except ValueError:
        return ip
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
