"""Resolver behaviour against the real loopback DNS server: cache, coalescing, faults."""

from __future__ import annotations

import asyncio

import pytest

from bench.common.dns_server import TestDnsServer, add_dkim_txt
from kumocore import ConfigError
from kumocore.dns import DnsError, Resolver
from kumocore.dns.name_server import parse_name_server


class FakeClock:
    """Monotonic time the test advances by hand, so TTL expiry needs no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked(dns_server: TestDnsServer, clock: FakeClock) -> Resolver:
    return Resolver([dns_server.address], timeout=0.5, negative_ttl=30, clock=clock)


@pytest.mark.parametrize(
    ("spec", "address", "port"),
    [
        ("127.0.0.1", "127.0.0.1", 53),
        ("127.0.0.1:5353", "127.0.0.1", 5353),
        ("::1", "::1", 53),
        ("[::1]:5353", "::1", 5353),
        ("[::1]", "::1", 53),
    ],
)
def test_name_server_accepts_ip_and_ip_port_forms(spec: str, address: str, port: int) -> None:
    server = parse_name_server(spec)
    assert (server.address, server.port) == (address, port)


@pytest.mark.parametrize("spec", [
    "dns.google", "127.0.0.1:0", "[::1]x", "1.2.3.4:dns",
    "[::1]:0", "[::1]:65536", "[::1]:123456",  # a bracketed address's port: 1-65535
])
def test_name_server_that_is_not_an_address_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="name_servers"):
        parse_name_server(spec)


async def test_repeated_lookup_is_answered_from_cache(
    dns_server: TestDnsServer, resolver: Resolver
) -> None:
    first = await resolver.lookup_mx("gmail.com")
    second = await resolver.lookup_mx("gmail.com")
    assert first == second
    assert dns_server.query_count("gmail.com", "MX") == 1


async def test_positive_answer_expires_after_its_record_ttl(
    dns_server: TestDnsServer, clocked: Resolver, clock: FakeClock
) -> None:
    dns_server.set_records("short.example", "A", ["192.0.2.1"], ttl=120)
    await clocked.lookup_addr("short.example")
    clock.now += 119
    await clocked.lookup_addr("short.example")
    assert dns_server.query_count("short.example", "A") == 1
    clock.now += 2
    dns_server.set_records("short.example", "A", ["192.0.2.2"])
    assert await clocked.lookup_addr("short.example") == ["192.0.2.2"]
    assert dns_server.query_count("short.example", "A") == 2


async def test_negative_answer_is_cached_for_the_negative_ttl_only(
    dns_server: TestDnsServer, clocked: Resolver, clock: FakeClock
) -> None:
    with pytest.raises(DnsError):
        await clocked.lookup_mx("later.example")
    dns_server.set_records("later.example", "MX", [(10, "mx.later.example")])
    with pytest.raises(DnsError):
        await clocked.lookup_mx("later.example")  # still the cached NXDOMAIN
    assert dns_server.query_count("later.example", "MX") == 1
    clock.now += 31
    assert (await clocked.lookup_mx("later.example")).site_name == "mx.later.example"


async def test_cache_is_bounded_and_evicts_least_recently_used(
    dns_server: TestDnsServer, clock: FakeClock
) -> None:
    small = Resolver([dns_server.address], timeout=0.5, cache_size=2, clock=clock)
    for domain in ("gmail.com", "yahoo.com", "gmail.com", "outlook.com"):
        await small.lookup_mx(domain)
    assert small.cached_entries == 2
    await small.lookup_mx("gmail.com")  # recently used: kept
    await small.lookup_mx("yahoo.com")  # evicted: asked again
    assert dns_server.query_count("gmail.com", "MX") == 1
    assert dns_server.query_count("yahoo.com", "MX") == 2


async def test_concurrent_identical_lookups_share_one_query(
    dns_server: TestDnsServer, resolver: Resolver
) -> None:
    results = await asyncio.gather(*(resolver.lookup_mx("yahoo.com") for _ in range(50)))
    assert {mx.site_name for mx in results} == {"(mta5|mta6|mta7).am0.yahoodns.net"}
    assert dns_server.query_count("yahoo.com", "MX") == 1


async def test_servfail_is_transient_and_not_cached(
    dns_server: TestDnsServer, resolver: Resolver
) -> None:
    dns_server.set_servfail(names=["gmail.com"])
    with pytest.raises(DnsError, match="SERVFAIL") as caught:
        await resolver.lookup_mx("gmail.com")
    assert caught.value.transient is True
    dns_server.set_servfail(False)
    assert (await resolver.lookup_mx("gmail.com")).is_mx


async def test_unresponsive_server_times_out_as_transient_error(
    dns_server: TestDnsServer,
) -> None:
    fast = Resolver([dns_server.address], timeout=0.2)
    dns_server.down()
    with pytest.raises(DnsError, match="timed out") as caught:
        await fast.lookup_mx("gmail.com")
    assert caught.value.transient is True
    dns_server.up()
    assert (await fast.lookup_mx("gmail.com")).site_name.endswith("gmail-smtp-in.l.google.com")


async def test_lookup_addr_returns_ipv4_then_ipv6(
    dns_server: TestDnsServer, resolver: Resolver
) -> None:
    dns_server.set_records("dual.example", "AAAA", ["2001:db8::25"])
    dns_server.set_records("dual.example", "A", ["192.0.2.25", "192.0.2.26"])
    addresses = await resolver.lookup_addr("dual.example")
    assert addresses[2:] == ["2001:db8::25"]
    assert sorted(addresses[:2]) == ["192.0.2.25", "192.0.2.26"]


async def test_lookup_addr_of_name_without_addresses_is_empty_but_nxdomain_raises(
    resolver: Resolver,
) -> None:
    assert await resolver.lookup_addr("gmail.com") == []
    with pytest.raises(DnsError, match="NXDOMAIN"):
        await resolver.lookup_addr("nowhere.example")


async def test_resolve_ips_returns_literal_addresses_without_dns(
    dns_server: TestDnsServer, resolver: Resolver
) -> None:
    assert await resolver.resolve_ips("192.0.2.1") == ["192.0.2.1"]
    assert await resolver.resolve_ips("[2001:DB8::1]") == ["2001:db8::1"]
    assert dns_server.queries == []


async def test_resolve_ips_follows_cname_and_rejects_hosts_without_addresses(
    dns_server: TestDnsServer, resolver: Resolver
) -> None:
    dns_server.set_records("alias.example", "CNAME", ["mx.examplecorp.com"])
    assert await resolver.resolve_ips("alias.example.") == ["127.0.0.1"]
    with pytest.raises(DnsError, match="no A or AAAA records"):
        await resolver.resolve_ips("gmail.com")


async def test_long_dkim_txt_record_is_fetched_over_tcp_and_rejoined(
    dns_server: TestDnsServer, resolver: Resolver
) -> None:
    key = "MIIC" + "A" * 700  # a 4096-bit key does not fit a 512-byte UDP answer
    zones = add_dkim_txt({}, "s2048", "examplecorp.com", key)
    for name, records in zones.items():
        dns_server.set_records(name, "TXT", records["TXT"])
    txt = await resolver.lookup_txt("s2048._domainkey.examplecorp.com")
    assert txt == [f"v=DKIM1; k=rsa; p={key}"]
    protocols = [q[2] for q in dns_server.queries if q[1] == "TXT"]
    assert protocols == ["udp", "tcp"]


async def test_lookup_txt_of_name_without_txt_is_empty(resolver: Resolver) -> None:
    assert await resolver.lookup_txt("yahoo.com") == []


async def test_configure_switches_servers_and_drops_the_cache(
    dns_server: TestDnsServer, resolver: Resolver
) -> None:
    await resolver.lookup_mx("gmail.com")
    with TestDnsServer({"gmail.com": {"MX": [(1, "smtp.other.example")]}}) as other:
        resolver.configure([other.address], timeout=0.5)
        assert (await resolver.lookup_mx("gmail.com")).site_name == "smtp.other.example"
        assert other.query_count("gmail.com", "MX") == 1


def test_configure_rejects_empty_server_list_and_bad_timeout(resolver: Resolver) -> None:
    with pytest.raises(ConfigError, match="name_servers"):
        resolver.configure([])
    with pytest.raises(ConfigError, match="timeout"):
        resolver.configure(["127.0.0.1"], timeout=0)


@pytest.mark.parametrize("name", ["a..b.example", "", "x" * 64 + ".example"])
async def test_invalid_name_is_a_permanent_dns_error_without_a_query(
    dns_server: TestDnsServer, resolver: Resolver, name: str
) -> None:
    with pytest.raises(DnsError, match="invalid DNS name") as caught:
        await resolver.lookup_mx(name)
    assert caught.value.transient is False
    assert dns_server.queries == []


async def test_mx_built_for_a_cached_answer_is_reused_until_the_answer_expires(
    dns_server: TestDnsServer, clocked: Resolver, clock: FakeClock
) -> None:
    dns_server.set_records("site.example", "MX", [(10, "mx1.site.example")], ttl=100)
    first = await clocked.lookup_mx("site.example")
    assert await clocked.lookup_mx("site.example") is first  # same answer: same value
    clock.now += 101  # the answer expired: a new query, and a value built from it
    dns_server.set_records("site.example", "MX", [(10, "mx2.site.example")], ttl=100)
    renewed = await clocked.lookup_mx("site.example")
    assert renewed.site_name == "mx2.site.example"
    assert dns_server.query_count("site.example", "MX") == 2


async def test_mx_built_for_a_domain_with_port_keeps_the_port_apart(
    dns_server: TestDnsServer, resolver: Resolver
) -> None:
    plain = await resolver.lookup_mx("gmail.com")
    with_port = await resolver.lookup_mx("gmail.com:2525")
    assert with_port.hosts == [f"{host}:2525" for host in plain.hosts]
    assert (await resolver.lookup_mx("gmail.com")).hosts == plain.hosts
    assert dns_server.query_count("gmail.com", "MX") == 1


async def test_configure_drops_the_mx_built_from_old_answers(
    dns_server: TestDnsServer, resolver: Resolver
) -> None:
    await resolver.lookup_mx("gmail.com")
    await resolver.lookup_mx("gmail.com")
    with TestDnsServer({"gmail.com": {"MX": [(1, "smtp.other.example")]}}) as other:
        resolver.configure([other.address], timeout=0.5)
        assert (await resolver.lookup_mx("gmail.com")).site_name == "smtp.other.example"


async def test_server_that_polls_seldom_answers_at_once_and_stops_within_its_interval() -> None:
    # The benchmark's server wakes only twice a second to check for stop(): answering must
    # not wait for that wake-up, and stop() takes no longer than one interval.
    import time

    server = TestDnsServer(
        {"slow.example": {"MX": [(10, "mx.slow.example")], "TTL": 60}}, poll_interval=0.5
    ).start()
    try:
        resolver = Resolver([server.address], timeout=0.4)
        started = time.monotonic()
        mx = await resolver.lookup_mx("slow.example")
        assert time.monotonic() - started < 0.3
        assert mx.hosts == ["mx.slow.example."]
    finally:
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.0
