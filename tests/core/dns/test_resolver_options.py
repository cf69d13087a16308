"""kumo.dns.configure_resolver with KumoMTA's whole option set: each option is honoured
(shown on the wire of the test DNS server, or by what is cached) or refused by name."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import pytest

from bench.common.dns_server import TestDnsServer
from kumocore import ConfigError
from kumocore.dns import DnsError, Resolver, make_dns_functions
from kumocore.dns.hosts import HostsFile
from kumocore.dns.lists import NamedResolvers

BIG_TXT = "v=DKIM1; p=" + "A" * 700  # over 512 bytes: truncated on UDP without EDNS


def _configure(resolver: Resolver, **table: Any) -> None:
    make_dns_functions(resolver)["dns.configure_resolver"](**table)


@pytest.mark.parametrize(("edns0", "protocols"), [(True, ["udp"]), (False, ["udp", "tcp"])])
async def test_edns0_decides_whether_a_large_answer_fits_in_udp(
    dns_server: TestDnsServer,
    edns0: bool,
    protocols: list[str],
) -> None:
    dns_server.set_records("sel._domainkey.big.example", "TXT", [BIG_TXT])
    resolver = Resolver()
    _configure(resolver, name_servers=[dns_server.address], options={"edns0": edns0})
    assert await resolver.lookup_txt("sel._domainkey.big.example") == [BIG_TXT]
    assert [q[2] for q in dns_server.queries] == protocols


async def test_name_server_protocol_tcp_and_udp(dns_server: TestDnsServer) -> None:
    dns_server.set_records("sel._domainkey.big.example", "TXT", [BIG_TXT])
    resolver = Resolver()
    _configure(resolver, name_servers=[{"socket_addr": dns_server.address, "protocol": "tcp"}])
    assert await resolver.lookup_txt("gmail.com") == []
    assert [q[2] for q in dns_server.queries] == ["tcp"]
    dns_server.queries.clear()
    # 'udp' never opens TCP: a truncated answer is that server failing.
    _configure(
        resolver,
        name_servers=[{"socket_addr": dns_server.address, "protocol": "udp"}],
        options={"edns0": False},
    )
    with pytest.raises(DnsError) as caught:
        await resolver.lookup_txt("sel._domainkey.big.example")
    assert caught.value.transient
    assert [q[2] for q in dns_server.queries] == ["udp"]


async def test_bind_addr_is_the_source_of_the_queries(dns_server: TestDnsServer) -> None:
    resolver = Resolver()
    _configure(
        resolver, name_servers=[{"socket_addr": dns_server.address, "bind_addr": "127.0.0.1:0"}]
    )
    assert await resolver.lookup_addr("mx.examplecorp.com") == ["127.0.0.1"]
    # An address this host does not have cannot be bound: the lookup fails.
    _configure(
        resolver, name_servers=[{"socket_addr": dns_server.address, "bind_addr": "192.0.2.77:0"}]
    )
    with pytest.raises(DnsError):
        await resolver.lookup_addr("mx.examplecorp.com")


class _Capture(asyncio.DatagramProtocol):
    """A name server that records the queries it gets and answers none."""

    def __init__(self) -> None:
        self.queries: list[dns.message.Message] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queries.append(dns.message.from_wire(data))


@pytest.fixture
async def capture() -> AsyncIterator[tuple[str, _Capture]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _Capture, local_addr=("127.0.0.1", 0), family=socket.AF_INET
    )
    yield f"127.0.0.1:{transport.get_extra_info('sockname')[1]}", protocol
    transport.close()


@pytest.mark.parametrize(("attempts", "expected"), [(0, 1), (2, 3)])
async def test_attempts_asks_an_unanswering_server_that_many_more_times(
    capture: tuple[str, _Capture],
    attempts: int,
    expected: int,
) -> None:
    address, server = capture
    resolver = Resolver()
    _configure(resolver, name_servers=[address], options={"timeout": "150ms", "attempts": attempts})
    with pytest.raises(DnsError, match="timed out"):
        await resolver.lookup_txt("slow.example")
    assert len(server.queries) == expected


async def test_attempts_go_through_every_server_in_order_each_time(
    capture: tuple[str, _Capture],
    dns_server: TestDnsServer,
) -> None:
    address, server = capture
    resolver = Resolver()
    _configure(
        resolver,
        name_servers=[address, dns_server.address],
        options={"timeout": "100ms", "attempts": 1},
    )
    assert await resolver.lookup_txt("gmail.com") == []  # the second server answers
    assert len(server.queries) == 1 and dns_server.query_count("gmail.com", "TXT") == 1


@pytest.mark.parametrize(
    ("options", "rd", "ad"),
    [
        ({}, True, False),
        ({"recursion_desired": False}, False, False),
        ({"validate": True}, True, True),
    ],
)
async def test_recursion_desired_and_validate_set_the_query_flags(
    capture: tuple[str, _Capture],
    options: dict[str, Any],
    rd: bool,
    ad: bool,
) -> None:
    address, server = capture
    resolver = Resolver()
    _configure(
        resolver, name_servers=[address], options={"timeout": "100ms", "attempts": 0, **options}
    )
    with pytest.raises(DnsError):
        await resolver.lookup_txt("flags.example")
    flags = server.queries[0].flags
    assert (bool(flags & dns.flags.RD), bool(flags & dns.flags.AD)) == (rd, ad)


async def test_cache_size_bounds_the_answers_kept(dns_server: TestDnsServer) -> None:
    resolver = Resolver()
    _configure(resolver, name_servers=[dns_server.address], options={"cache_size": 1})
    await resolver.lookup_txt("gmail.com")
    await resolver.lookup_txt("yahoo.com")  # pushes gmail.com out
    await resolver.lookup_txt("gmail.com")
    assert dns_server.query_count("gmail.com", "TXT") == 2
    assert resolver.cached_entries == 1


async def test_ttl_bounds_clamp_how_long_answers_are_cached(dns_server: TestDnsServer) -> None:
    now = [0.0]
    resolver = Resolver(clock=lambda: now[0])
    dns_server.set_records("short.example", "TXT", ["x"], ttl=0)
    dns_server.set_records("long.example", "TXT", ["y"], ttl=300)
    _configure(
        resolver,
        name_servers=[dns_server.address],
        options={"positive_min_ttl": "1h", "positive_max_ttl": "2h", "negative_max_ttl": "2s"},
    )
    for _ in range(2):
        await resolver.lookup_txt("long.example")  # TTL 300: kept for the 1 h minimum
        await resolver.lookup_txt("short.example")  # TTL 0: kept for the 1 h minimum
        with pytest.raises(DnsError, match="NXDOMAIN"):
            await resolver.lookup_txt("missing.example")  # 60 s negative TTL: 2 s at most
        now[0] += 3
    assert dns_server.query_count("short.example", "TXT") == 1
    assert dns_server.query_count("missing.example", "TXT") == 2
    now[0] += 7200
    await resolver.lookup_txt("long.example")  # past positive_max_ttl
    assert dns_server.query_count("long.example", "TXT") == 2


async def test_use_hosts_file_never_answers_from_dns_alone(
    dns_server: TestDnsServer,
    tmp_path: Path,
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("10.0.0.9 relay.internal\n")
    dns_server.set_records("relay.internal", "A", ["192.0.2.1"])
    resolver = Resolver(hosts=HostsFile(str(hosts)))
    for setting, expected in (("Auto", "10.0.0.9"), ("Never", "192.0.2.1"), ("Always", "10.0.0.9")):
        _configure(resolver, name_servers=[dns_server.address], options={"use_hosts_file": setting})
        assert await resolver.lookup_addr("relay.internal") == [expected]


async def test_domain_search_ndots_and_ip_strategy_leave_names_absolute_as_kumomta(
    dns_server: TestDnsServer,
) -> None:
    dns_server.set_records("host.corp.example", "TXT", ["searched"])
    dns_server.set_records("host", "TXT", ["absolute"])
    resolver = Resolver()
    _configure(
        resolver,
        name_servers=[dns_server.address],
        domain="corp.example",
        search=["corp.example"],
        options={"ndots": 5, "ip_strategy": "Ipv6Only"},
    )
    assert await resolver.lookup_txt("host") == ["absolute"]
    assert dns_server.query_count("host.corp.example") == 0
    dns_server.set_records("dual.example", "AAAA", ["::1"])
    dns_server.set_records("dual.example", "A", ["127.0.0.7"])
    assert await resolver.lookup_addr("dual.example") == ["127.0.0.7", "::1"]


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"options": {"edns": True}}, "'edns'"),
        ({"options": {"ndots": -1}}, "options.ndots"),
        ({"options": {"timeout": "soon"}}, "options.timeout"),
        ({"options": {"timeout": 0}}, "options.timeout"),
        ({"options": {"attempts": True}}, "options.attempts"),
        ({"options": {"attempts": 101}}, "options.attempts must be at most 100"),
        ({"options": {"ip_strategy": "Ipv4"}}, "options.ip_strategy"),
        ({"options": {"use_hosts_file": True}}, "options.use_hosts_file"),
        ({"options": {"num_concurrent_reqs": 2}}, "options.num_concurrent_reqs"),
        ({"options": {"preserve_intermediates": False}}, "options.preserve_intermediates"),
        ({"options": {"try_tcp_on_error": True}}, "options.try_tcp_on_error"),
        ({"options": {"case_randomization": True}}, "options.case_randomization"),
        ({"options": {"server_ordering_strategy": "RoundRobin"}}, "server_ordering_strategy"),
        ({"options": {"trust_anchor_file": {"managed": "/x"}}}, "options.trust_anchor_file"),
        ({"options": {"negative_min_ttl": "1 fortnight"}}, "options.negative_min_ttl"),
        ({"domain": "a..b"}, "domain"),
        ({"search": "corp.example"}, "search"),
        ({"name_servers": [{"socket_addr": "127.0.0.1:53", "protocol": "quic"}]}, "protocol"),
        (
            {"name_servers": [{"socket_addr": "127.0.0.1:53", "trust_negative_responses": False}]},
            "trust_negative_responses",
        ),
        ({"name_servers": [{"socket_addr": "127.0.0.1:53", "bind_addr": "eth0"}]}, "bind_addr"),
        ({"name_servers": [{"socket_addr": "127.0.0.1:53", "weight": 1}]}, "'weight'"),
        ({"timeout": 1, "options": {"attempts": 1}}, "timeout"),
        ({"Unbound": {"name_servers": []}}, "'Unbound' resolver is not supported"),
        ({"Aggregate": []}, "'Aggregate' resolver is not supported"),
    ],
)
def test_options_kumocore_cannot_honour_are_refused_naming_them(
    table: dict[str, Any],
    named: str,
) -> None:
    table.setdefault("name_servers", ["127.0.0.1:53"])
    resolver = Resolver(["127.0.0.1:9"])
    with pytest.raises(ConfigError, match=named):
        _configure(resolver, **table)
    assert [ns.answer_port() for ns in resolver._dns.nameservers] == [9]  # unchanged


async def test_accepted_values_of_partly_supported_options(dns_server: TestDnsServer) -> None:
    resolver = Resolver()
    _configure(
        resolver,
        name_servers=[
            {
                "socket_addr": dns_server.address,
                "protocol": "udp_then_tcp",
                "trust_negative_responses": True,
            }
        ],
        options={
            "num_concurrent_reqs": 1,
            "preserve_intermediates": True,
            "try_tcp_on_error": False,
            "case_randomization": False,
            "server_ordering_strategy": "UserProvidedOrder",
        },
    )
    assert (await resolver.lookup_mx("gmail.com")).hosts


async def test_define_resolver_takes_the_same_options_and_the_system_form(
    dns_server: TestDnsServer,
) -> None:
    resolvers = NamedResolvers(Resolver())
    resolvers.define(
        "rbl",
        {
            "Hickory": {
                "name_servers": [{"socket_addr": dns_server.address, "protocol": "tcp"}],
                "options": {"cache_size": 8},
            }
        },
    )
    assert await resolvers.get("rbl").lookup_txt("gmail.com") == []
    assert [q[2] for q in dns_server.queries] == ["tcp"]
    resolvers.define("system", "HickorySystemConfig")
    assert resolvers.get("system") is not resolvers.default
    with pytest.raises(ConfigError, match=r"options\.try_tcp_on_error"):
        resolvers.define(
            "x",
            {
                "Hickory": {
                    "name_servers": [dns_server.address],
                    "options": {"try_tcp_on_error": True},
                }
            },
        )
