"""Name server addresses as policies write them (``"IP"``, ``"IP:PORT"``, ``"[IPv6]:PORT"``),
in a leaf module: the resolver and the pieces its configuration is built from
(:mod:`kumocore.dns.resolver_config`, :mod:`kumocore.dns.upstream`) all parse them."""

from __future__ import annotations

import ipaddress

import dns.nameserver

from kumocore.dns.site_name import split_bracketed, split_port
from kumocore.errors import ConfigError


def parse_name_server(spec: str, *, min_port: int = 1) -> dns.nameserver.Do53Nameserver:
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
    if not min_port <= port < 65536:  # a local bind_addr may say 0: any port
        raise ConfigError(f"name_servers: port of {spec!r} is out of range")
    return dns.nameserver.Do53Nameserver(address, port)
