"""``kumo.dns.lookup_addr(NAME, OPT_RESOLVER_NAME, OPT_STRATEGY)``: the third argument
orders or filters the families as ``ip_lookup_strategy`` does (KumoMTA 2026.04)."""

from __future__ import annotations

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore import ConfigError
from kumocore.dns import Resolver
from kumocore.dns.policy import make_dns_functions


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (None, ["192.0.2.7", "2001:db8::7"]),
        ("Ipv6ThenIpv4", ["2001:db8::7", "192.0.2.7"]),
        ("Ipv4Only", ["192.0.2.7"]),
        ("Ipv6Only", ["2001:db8::7"]),
    ],
)
async def test_lookup_addr_takes_an_ip_lookup_strategy(
    dns_server: TestDnsServer, resolver: Resolver, strategy: str | None, expected: list[str]
) -> None:
    dns_server.set_records("dual.example", "A", ["192.0.2.7"])
    dns_server.set_records("dual.example", "AAAA", ["2001:db8::7"])
    lookup_addr = make_dns_functions(resolver)["dns.lookup_addr"]
    assert await lookup_addr("dual.example", None, strategy) == expected


async def test_an_unknown_strategy_is_refused_naming_the_values(resolver: Resolver) -> None:
    lookup_addr = make_dns_functions(resolver)["dns.lookup_addr"]
    with pytest.raises(ConfigError, match="strategy must be one of Ipv4Only"):
        await lookup_addr("dual.example", None, "Ipv4First")
