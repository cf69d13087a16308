"""KumoMTA's ``dns_mx_resolve_*`` counts, kept by the resolver around each MX
resolution: ok and fail, answered by the cache of built MX sets (hit) or asked (miss),
and in progress while asked. A real DNS server on loopback; the node's ``/metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from kumocore.dns import DnsError, Resolver
from kumocore.testing.dns import TestDnsServer
from kumocore.testing.plugin import MakeNode
from tests.support.metric_samples import samples


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    with TestDnsServer({"one.example": {"MX": [(10, "mx.one.example")]}}) as server:
        yield server


def _counts(resolver: Resolver) -> tuple[int, int, int, int, int]:
    stats = resolver.mx_stats
    return (stats.cache_hit + stats.resolved, stats.failed, stats.cache_hit, stats.cache_miss,
            stats.in_progress)  # fmt: skip


async def test_each_resolution_is_counted_once_as_kumomta_counts_it(dns: TestDnsServer) -> None:
    resolver = Resolver([dns.address], timeout=0.5)
    await resolver.lookup_mx("one.example")  # asked
    await resolver.lookup_mx("one.example")  # from the cache
    await resolver.lookup_mx("[192.0.2.1]")  # a literal: ok, nothing asked
    with pytest.raises(DnsError):
        await resolver.lookup_mx("missing.example")  # NXDOMAIN
    assert _counts(resolver) == (3, 1, 1, 2, 0)  # ok, fail, hit, miss, in progress


async def test_a_resolution_waiting_on_dns_is_in_progress_until_it_ends(
    dns: TestDnsServer,
) -> None:
    resolver = Resolver([dns.address], timeout=0.3)
    dns.down()  # queries go unanswered until the timeout
    lookup = asyncio.ensure_future(resolver.lookup_mx("one.example"))
    await asyncio.sleep(0.1)
    assert resolver.mx_stats.in_progress == 1
    with pytest.raises(DnsError):
        await lookup
    assert _counts(resolver) == (0, 1, 0, 1, 0)


async def test_the_node_exports_them_under_kumomtas_names(make_node: MakeNode) -> None:
    node = await make_node()
    await node.send(recipients=["a@example.com", "b@example.net"])
    await node.wait_for("Delivery", count=2)
    values = samples((await node.admin("GET", "/metrics"))[1])
    assert values[("dns_mx_resolve_status_ok", ())] >= 2
    assert values[("dns_mx_resolve_cache_miss", ())] >= 2  # two domains asked
    assert values[("dns_mx_resolve_status_fail", ())] == 0
    assert values[("dns_mx_resolve_in_progress", ())] == 0
