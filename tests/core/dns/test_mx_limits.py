"""``kumo.dns.set_mx_timeout``, ``set_mx_negative_cache_ttl`` and
``set_mx_concurrency_limit`` against the real loopback DNS server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore import ConfigError, PolicyError
from kumocore.dns import DnsError, Resolver
from tests.plugins.lua_policy.support import load


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_mx_timeout_cuts_a_lookup_shorter_than_the_resolver_timeout(
    dns_server: TestDnsServer,
) -> None:
    resolver = Resolver([dns_server.address], timeout=3.0)
    resolver.mx_limits.set_timeout("200ms")
    dns_server.down()
    began = time.monotonic()
    with pytest.raises(DnsError, match=r"MX lookup for gmail\.com\. timed out after 0\.2s") as e:
        await resolver.lookup_mx("gmail.com")
    assert time.monotonic() - began < 1.0
    assert e.value.transient is True


async def test_the_mx_timeout_includes_waiting_for_a_concurrency_slot(
    dns_server: TestDnsServer,
) -> None:
    resolver = Resolver([dns_server.address], timeout=0.5)
    resolver.mx_limits.set_concurrency(1)
    resolver.mx_limits.set_timeout(0.7)  # one slot: the second lookup starts at 0.5 s
    dns_server.down()
    first, second = await asyncio.gather(
        resolver.lookup_mx("one.example"), resolver.lookup_mx("two.example"), return_exceptions=True
    )
    assert "one.example. timed out after 0.5s" in str(first)  # the resolver's own timeout
    assert "two.example. timed out after 0.7s" in str(second)  # the MX bound


@pytest.mark.parametrize(("limit", "least", "most"), [(1, 1.3, 3.0), (3, 0.4, 1.2)])
async def test_concurrency_limit_serialises_mx_queries(
    dns_server: TestDnsServer, limit: int, least: float, most: float
) -> None:
    resolver = Resolver([dns_server.address], timeout=0.5)
    resolver.mx_limits.set_concurrency(limit)
    dns_server.down()  # every query takes the resolver's whole 0.5 s
    began = time.monotonic()
    results = await asyncio.gather(
        *(resolver.lookup_mx(f"d{i}.example") for i in range(3)), return_exceptions=True
    )
    elapsed = time.monotonic() - began
    assert all(isinstance(r, DnsError) for r in results)
    assert least <= elapsed < most


async def test_a_set_negative_ttl_remembers_transient_failures(
    dns_server: TestDnsServer,
) -> None:
    clock = FakeClock()
    resolver = Resolver([dns_server.address], timeout=0.5, clock=clock)
    resolver.mx_limits.set_negative_ttl("10s")
    dns_server.set_servfail(names=["gmail.com"])
    with pytest.raises(DnsError, match="SERVFAIL"):
        await resolver.lookup_mx("gmail.com")
    dns_server.set_servfail(False)
    with pytest.raises(DnsError, match="SERVFAIL") as again:
        await resolver.lookup_mx("gmail.com")  # remembered: no query
    assert again.value.transient is True
    assert dns_server.query_count("gmail.com", "MX") == 1
    clock.now += 11
    assert (await resolver.lookup_mx("gmail.com")).is_mx


async def test_a_set_negative_ttl_outlasts_the_resolvers_nxdomain_cache(
    dns_server: TestDnsServer,
) -> None:
    clock = FakeClock()
    resolver = Resolver([dns_server.address], timeout=0.5, negative_ttl=30, clock=clock)
    resolver.mx_limits.set_negative_ttl("5m")
    with pytest.raises(DnsError, match="NXDOMAIN"):
        await resolver.lookup_mx("later.example")
    dns_server.set_records("later.example", "MX", [(10, "mx.later.example")])
    clock.now += 60  # past the resolver's 30 s, within the MX negative TTL
    with pytest.raises(DnsError, match="NXDOMAIN") as again:
        await resolver.lookup_mx("later.example")
    assert again.value.transient is False
    clock.now += 300
    assert (await resolver.lookup_mx("later.example")).site_name == "mx.later.example"


async def test_remembered_failures_are_bounded(dns_server: TestDnsServer) -> None:
    resolver = Resolver([dns_server.address], timeout=0.5, cache_size=4)
    resolver.mx_limits.set_negative_ttl("1h")
    for i in range(10):
        with pytest.raises(DnsError):
            await resolver.lookup_mx(f"missing{i}.example")
    assert len(resolver.mx_limits._failures) <= 4


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        ("kumo.dns.set_mx_timeout('soon')", "bad duration for 'dns.set_mx_timeout'"),
        ("kumo.dns.set_mx_timeout(0)", "expected a positive duration"),
        ("kumo.dns.set_mx_negative_cache_ttl(-1)", "dns.set_mx_negative_cache_ttl"),
        ("kumo.dns.set_mx_concurrency_limit(0)", "expected a whole number >= 1, got 0"),
        ("kumo.dns.set_mx_concurrency_limit('many')", "expected a whole number >= 1"),
    ],
)
async def test_bad_values_are_refused_when_the_policy_loads(
    tmp_path: Path, call: str, needle: str
) -> None:
    with pytest.raises(PolicyError, match=needle):
        await load(tmp_path, f"local kumo = require 'kumo'\n{call}\n")


async def test_a_policy_sets_the_runtime_resolvers_limits(tmp_path: Path) -> None:
    runtime, _ = await load(
        tmp_path,
        """\
        local kumo = require 'kumo'
        kumo.dns.set_mx_timeout '250ms'
        kumo.dns.set_mx_negative_cache_ttl '10m'
        kumo.dns.set_mx_concurrency_limit(16)
    """,
    )
    limits = runtime.resolver.mx_limits
    assert (limits.timeout, limits.negative_ttl, limits.concurrency) == (0.25, 600.0, 16)


def test_set_concurrency_refuses_a_bool() -> None:
    with pytest.raises(ConfigError):
        Resolver(["127.0.0.1"]).mx_limits.set_concurrency(True)
