"""Sets of IP networks (``relay_hosts``, ``trusted_hosts``, ``prohibited_hosts``...).

Entries are parsed strictly, as KumoMTA's ``cidr_map`` does: ``192.168.1.0/24`` is a
network, ``192.168.1.1/24`` (host bits set) is a mistake and is refused rather than
silently widened. Membership is checked for every accepted connection, so networks are
precomputed as integer (network, mask) pairs and addresses are parsed with
``socket.inet_pton``, which is several times faster than :mod:`ipaddress`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Iterator

from kumocore.digits import port_number
from kumocore.errors import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# ``::ffff:a.b.c.d`` is how a dual-stack socket reports an IPv4 peer.
_MAPPED_NETWORK = ipaddress.IPv6Network("::ffff:0:0/96")


class CidrSet:
    """An immutable set of IPv4/IPv6 networks; bare addresses are single-host networks."""

    __slots__ = ("_networks", "_v4", "_v6")

    def __init__(self, entries: Iterable[str | IPAddress | IPNetwork] = ()) -> None:
        if isinstance(entries, str):
            # A lone string would otherwise be iterated character by character.
            raise ConfigError(f"expected a list of IP addresses or CIDR blocks, got {entries!r}")
        networks: dict[IPNetwork, None] = {}
        for entry in entries:
            try:
                networks[parse_network(entry)] = None
            except ValueError as exc:
                raise ConfigError(f"invalid CIDR block {entry!r}: {exc}") from None
        self._networks: tuple[IPNetwork, ...] = tuple(networks)
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        for net in self._networks:
            if isinstance(net, ipaddress.IPv6Network) and net.subnet_of(_MAPPED_NETWORK):
                # ``::ffff:10.0.0.0/104`` means ``10.0.0.0/8``: match it as IPv4 too.
                v4.append((int(net.network_address) & 0xFFFFFFFF, _mask(32, net.prefixlen - 96)))
            if isinstance(net, ipaddress.IPv4Network):
                v4.append((int(net.network_address), int(net.netmask)))
            else:
                v6.append((int(net.network_address), int(net.netmask)))
        self._v4 = tuple(v4)
        self._v6 = tuple(v6)

    def contains(self, ip: str | IPAddress) -> bool:
        """Whether ``ip`` (IPv4, IPv6, or IPv4-mapped IPv6) is in one of the networks.

        Raises ``ValueError`` when ``ip`` is not an IP address: callers pass peer addresses
        they got from a socket, so anything else is a programming error.
        """
        version, value = _address_int(ip)
        if version == 6:
            if any(value & mask == net for net, mask in self._v6):
                return True
            if value >> 32 != 0xFFFF:  # not IPv4-mapped
                return False
            value &= 0xFFFFFFFF
        return any(value & mask == net for net, mask in self._v4)

    __contains__ = contains

    @property
    def networks(self) -> tuple[IPNetwork, ...]:
        return self._networks

    def to_list(self) -> list[str]:
        """The entries as strings, single hosts without their ``/32`` or ``/128``."""
        return list(self)

    def __iter__(self) -> Iterator[str]:
        for net in self._networks:
            single = net.prefixlen == net.max_prefixlen
            yield str(net.network_address) if single else str(net)

    def __len__(self) -> int:
        return len(self._networks)

    def collapsed(self) -> list[IPNetwork]:
        """The addresses held, as the fewest networks: IPv4 first, in address order, a
        network inside another dropped, adjacent halves merged (KumoMTA's radix tree)."""
        v4 = [net for net in self._networks if isinstance(net, ipaddress.IPv4Network)]
        v6 = [net for net in self._networks if isinstance(net, ipaddress.IPv6Network)]
        return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]

    def __eq__(self, other: object) -> bool:
        # Sets holding the same addresses are equal, however they were written.
        if not isinstance(other, CidrSet):
            return NotImplemented
        return self.collapsed() == other.collapsed()

    def __hash__(self) -> int:
        return hash(tuple(self.collapsed()))

    def __repr__(self) -> str:
        return f"CidrSet({self.to_list()!r})"


def join_host_port(host: str, port: int) -> str:
    """``("127.0.0.1", 25)`` -> ``"127.0.0.1:25"``; an IPv6 host in brackets
    (``"[::1]:25"``): a socket address as KumoMTA prints it, the inverse of
    :func:`split_host_port`."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(address: str) -> tuple[str, int]:
    """``"0.0.0.0:25"`` -> ``("0.0.0.0", 25)``; ``"[::1]:25"`` -> ``("::1", 25)``.

    The host may be a name (``localhost:25``); an IPv6 host must be in brackets, since its
    own colons make the port ambiguous otherwise. Raises ``ValueError``.
    """
    host, sep, port_text = address.rpartition(":")
    port = port_number(port_text)
    if not sep or not host or port is None:
        raise ValueError("expected 'host:port' (an IPv6 host as '[::1]:25')")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host.split("%", 1)[0])  # raises ValueError when not IPv6
    elif ":" in host:
        raise ValueError("an IPv6 host needs brackets, as in '[::1]:25'")
    else:
        _check_host_name(host)
    return host, port


def _check_host_name(host: str) -> None:
    """A host that is not an IP literal must be a well-formed DNS name, as KumoMTA checks
    a ``host:port`` when the policy loads (``invalid hostname "..."``), rather than fail at
    the first connection. Relaxed as KumoMTA's parser is: ``_`` and IDN letters pass."""
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253:
        raise ValueError(f'invalid hostname "{host}": longer than 253 characters')
    for label in name.split("."):
        if not label or len(label) > 63:
            raise ValueError(f'invalid hostname "{host}": malformed label "{label}"')
        bad = next((c for c in label if not (c.isalnum() or c in "-_*")), None)
        if bad is not None:
            raise ValueError(f'invalid hostname "{host}": unrecognized character {bad!r}')


def parse_network(entry: str | IPAddress | IPNetwork) -> IPNetwork:
    """One strict network: host bits must be clear. Raises ``ValueError`` with the reason."""
    if isinstance(entry, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return entry
    if isinstance(entry, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return ipaddress.ip_network(entry)
    if not isinstance(entry, str):
        raise ValueError("expected an IP address or CIDR block")
    return ipaddress.ip_network(entry.strip(), strict=True)


def _address_int(ip: str | IPAddress) -> tuple[int, int]:
    if not isinstance(ip, str):
        return ip.version, int(ip)
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")
    except (OSError, ValueError):
        pass
    try:
        # A link-local peer may carry a zone (``fe80::1%eth0``); the zone is not matched.
        packed = socket.inet_pton(socket.AF_INET6, ip.split("%", 1)[0])
    except (OSError, ValueError):
        raise ValueError(f"not an IP address: {ip!r}") from None
    return 6, int.from_bytes(packed, "big")


def _mask(bits: int, prefixlen: int) -> int:
    return ((1 << bits) - 1) ^ ((1 << (bits - prefixlen)) - 1)
