"""``kumo.domain_map.new`` and ``kumo.cidr.make_map``: tables keyed by domain or IP address.

Both are indexed like Lua tables (``dmap['example.com']``, ``cmap['10.0.0.1'] = 'lan'``)
through the bridge's map proxy, and like dicts from Python.

* A domain map matches exact names first, then ``*.parent`` wildcards, nearest parent
  first; a wildcard never matches the parent itself. Names are compared case-insensitively.
* A CIDR map answers the value of the most specific block containing the address. Keys
  may be written ``10.0.0.0/8``, ``[10.0.0.1]``, ``10.0.0.1:25`` or ``[::1]:25``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kumocore import ConfigError
from kumocore.config.cidr import IPNetwork, parse_network


def _seed(who: str, mapping: Any) -> Mapping[Any, Any]:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{who} takes an optional table of key = value pairs")
    return mapping


class DomainMap:
    """Domain name → value, with ``*.example.com`` wildcard keys."""

    lua_proxy = "map"

    def __init__(self, mapping: Mapping[str, Any] | None = None) -> None:
        self._exact: dict[str, Any] = {}
        self._wild: dict[str, Any] = {}
        for key, value in _seed("kumo.domain_map.new", mapping).items():
            self[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str) or not key:
            raise ConfigError(f"a domain_map key must be a domain name, got {key!r}")
        name = key.lower().rstrip(".")
        if name.startswith("*."):
            self._wild[name[2:]] = value
        else:
            self._exact[name] = value

    def pop(self, key: str, default: Any = None) -> Any:
        name = str(key).lower().rstrip(".")
        if name.startswith("*."):
            return self._wild.pop(name[2:], default)
        return self._exact.pop(name, default)

    def get(self, key: Any, default: Any = None) -> Any:
        if not isinstance(key, str):
            return default
        name = key.lower().rstrip(".")
        if name in self._exact:
            return self._exact[name]
        labels = name.split(".")
        for i in range(1, len(labels)):
            parent = ".".join(labels[i:])
            if parent in self._wild:
                return self._wild[parent]
        return default

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def __iter__(self) -> Iterator[str]:
        yield from self._exact
        yield from (f"*.{name}" for name in self._wild)

    def __len__(self) -> int:
        return len(self._exact) + len(self._wild)


def _address_key(key: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from ``1.2.3.4``, ``[1.2.3.4]``, ``1.2.3.4:25`` or ``[::1]:25``; else None."""
    if not isinstance(key, str):
        return None
    text = key.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    text = text.removeprefix("IPv6:")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class CidrMap:
    """IP block → value; a lookup answers the most specific block holding the address."""

    lua_proxy = "map"

    def __init__(self, mapping: Mapping[str, Any] | None = None) -> None:
        self._blocks: dict[IPNetwork, Any] = {}
        for key, value in _seed("kumo.cidr.make_map", mapping).items():
            self[key] = value

    def _network(self, key: Any) -> IPNetwork:
        address = _address_key(key)
        if address is not None:
            return ipaddress.ip_network(address)
        try:
            return parse_network(key)
        except ValueError as exc:
            raise ConfigError(f"kumo.cidr.make_map: invalid key {key!r}: {exc}") from None

    def __setitem__(self, key: str, value: Any) -> None:
        self._blocks[self._network(key)] = value

    def pop(self, key: str, default: Any = None) -> Any:
        return self._blocks.pop(self._network(key), default)

    def get(self, key: Any, default: Any = None) -> Any:
        address = _address_key(key)
        if address is None:
            try:  # a block itself ('10.0.0.0/8'): its own value
                return self._blocks.get(parse_network(key), default)
            except (ValueError, TypeError):
                return default
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        best: IPNetwork | None = None
        for network in self._blocks:
            if network.version == address.version and address in network and (
                    best is None or network.prefixlen > best.prefixlen):
                best = network
        return default if best is None else self._blocks[best]

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def __iter__(self) -> Iterator[str]:
        return iter(str(network) for network in self._blocks)

    def __len__(self) -> int:
        return len(self._blocks)


def map_functions() -> dict[str, Callable[..., Any]]:
    return {"domain_map.new": DomainMap, "cidr.make_map": CidrMap}
