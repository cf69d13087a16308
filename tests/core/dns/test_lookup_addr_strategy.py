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
        ("Ipv6ThenIpv4", ["2001:db8::7"]),
        ("Ipv4ThenIpv6", ["192.0.2.7"]),
        ("Ipv4AndIpv6", ["192.0.2.7", "2001:db8::7"]),
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


@pytest.mark.parametrize(
    ("name", "strategy", "expected"),
    [
        ("v6only.example", "Ipv4ThenIpv6", ["2001:db8::6"]),
        ("v4only.example", "Ipv6ThenIpv4", ["192.0.2.4"]),
        ("v6only.example", "Ipv4Only", []),
        ("v4only.example", "Ipv6Only", []),
    ],
)
async def test_the_then_strategies_fall_back_to_the_second_family_only_without_the_first(
    dns_server: TestDnsServer,
    resolver: Resolver,
    name: str,
    strategy: str,
    expected: list[str],
) -> None:
    # KumoMTA's resolver test (mod-dns-resolver/test-strategy.lua): mx4 has only an A
    # record, mx6 only an AAAA record.
    dns_server.set_records("v4only.example", "A", ["192.0.2.4"])
    dns_server.set_records("v6only.example", "AAAA", ["2001:db8::6"])
    lookup_addr = make_dns_functions(resolver)["dns.lookup_addr"]
    assert await lookup_addr(name, None, strategy) == expected


async def test_an_unknown_strategy_is_refused_naming_the_values(resolver: Resolver) -> None:
    lookup_addr = make_dns_functions(resolver)["dns.lookup_addr"]
    with pytest.raises(ConfigError, match="strategy must be one of Ipv4Only"):
        await lookup_addr("dual.example", None, "Ipv4First")
