"""``ip_lookup_strategy``'s ``*Then*`` values on real deliveries: the second family is used
only when the first has no address, as KumoMTA's resolver looks it up. The MX host has an
IPv4 address where the sink listens and an IPv6 one where nothing does."""

from __future__ import annotations

from typing import Any


def _dual_stack_mx(bench: Any) -> None:
    bench.dns.set_records("dual.example", "MX", [(10, "mx.dual.example")])
    bench.dns.set_records("mx.dual.example", "A", ["127.0.0.1"])
    bench.dns.set_records("mx.dual.example", "AAAA", ["::1"])  # the sink is not there


async def test_ipv6_then_ipv4_does_not_fall_back_to_ipv4_when_ipv6_has_an_address(
    make_bench: Any,
) -> None:
    bench = await make_bench(path={"ip_lookup_strategy": "Ipv6ThenIpv4"},
                             queue={"retry_interval": "1h"})  # fmt: skip
    _dual_stack_mx(bench)
    await bench.inject("user@dual.example")
    [failure] = await bench.wait_for_records("TransientFailure", 1)
    assert bench.sink.messages == []  # the IPv4 address where the sink listens: not tried
    assert "::1" in failure["response"]["content"]
    assert "127.0.0.1" not in failure["response"]["content"]


async def test_ipv4_then_ipv6_uses_ipv4_alone_when_it_has_an_address(make_bench: Any) -> None:
    bench = await make_bench(path={"ip_lookup_strategy": "Ipv4ThenIpv6"})
    _dual_stack_mx(bench)
    await bench.inject("user@dual.example")
    await bench.sink.wait_for(1)


async def test_ipv6_then_ipv4_falls_back_to_ipv4_for_a_host_without_ipv6(
    make_bench: Any,
) -> None:
    bench = await make_bench(path={"ip_lookup_strategy": "Ipv6ThenIpv4"})
    bench.dns.set_records("v4only.example", "MX", [(10, "mx.v4only.example")])
    bench.dns.set_records("mx.v4only.example", "A", ["127.0.0.1"])
    await bench.inject("user@v4only.example")
    await bench.sink.wait_for(1)
