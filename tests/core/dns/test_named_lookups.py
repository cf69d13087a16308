"""kumo.dns.lookup_mx / lookup_addr / lookup_txt through a resolver named by
kumo.dns.define_resolver: two real DNS servers on loopback, one behind the default
resolver and one behind the named one, answering differently for the same names."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore import ConfigError
from kumocore.dns import DnsError, Resolver, make_dns_functions
from kumocore.dns.lists import NamedResolvers
from kumocore.dns.mx_limits import make_mx_limit_functions

DEFAULT_ZONES = {
    "example.com": {
        "MX": [(10, "mx.default.test")],
        "A": ["192.0.2.1"],
        "AAAA": ["2001:db8::1"],
        "TXT": ["seen by the default resolver"],
    },
}
ALTERNATE_ZONES = {
    "example.com": {
        "MX": [(5, "mx1.alt.test"), (7, "mx2.alt.test")],
        "A": ["198.51.100.7"],
        "AAAA": ["2001:db8::7"],
        "TXT": ["seen by the named resolver"],
    },
}


@pytest.fixture
def default_server() -> Iterator[TestDnsServer]:
    with TestDnsServer(DEFAULT_ZONES) as server:
        yield server


@pytest.fixture
def alternate_server() -> Iterator[TestDnsServer]:
    with TestDnsServer(ALTERNATE_ZONES) as server:
        yield server


def _hickory(server: TestDnsServer, **options: Any) -> dict[str, Any]:
    return {"Hickory": {"name_servers": [server.address], "options": options}}


@pytest.fixture
def resolvers(default_server: TestDnsServer, alternate_server: TestDnsServer) -> NamedResolvers:
    named = NamedResolvers(Resolver([default_server.address], timeout=0.5))
    named.define("alt", _hickory(alternate_server, timeout="500ms"))
    return named


@pytest.fixture
def fns(resolvers: NamedResolvers) -> dict[str, Any]:
    return make_dns_functions(resolvers)


async def test_named_resolver_answers_mx_addr_and_txt_from_its_own_server(
    fns: dict[str, Any],
) -> None:
    default_mx = await fns["dns.lookup_mx"]("example.com")
    named_mx = await fns["dns.lookup_mx"]("example.com", "alt")
    assert default_mx["hosts"] == ["mx.default.test."]
    assert named_mx == {
        "domain_name": "example.com.",
        "hosts": ["mx1.alt.test.", "mx2.alt.test."],
        "site_name": "(mx1|mx2).alt.test",
        "by_pref": {5: ["mx1.alt.test."], 7: ["mx2.alt.test."]},
        "is_domain_literal": False,
        "is_secure": False,
        "is_mx": True,
        "mta_sts": "None",
    }
    assert await fns["dns.lookup_addr"]("example.com") == ["192.0.2.1", "2001:db8::1"]
    assert await fns["dns.lookup_addr"]("example.com", "alt") == ["198.51.100.7", "2001:db8::7"]
    assert await fns["dns.lookup_addr"]("example.com", "alt", "Ipv6Only") == ["2001:db8::7"]
    assert await fns["dns.lookup_txt"]("example.com") == ["seen by the default resolver"]
    assert await fns["dns.lookup_txt"]("example.com", "alt") == ["seen by the named resolver"]


async def test_named_and_default_answers_are_cached_apart(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
    default_server: TestDnsServer,
    alternate_server: TestDnsServer,
) -> None:
    for _ in range(3):  # alternate: neither answer may hide the other
        assert await fns["dns.lookup_txt"]("example.com", "alt") == ["seen by the named resolver"]
        assert await fns["dns.lookup_txt"]("example.com") == ["seen by the default resolver"]
        await fns["dns.lookup_mx"]("example.com", "alt")
        await fns["dns.lookup_mx"]("example.com")
    # One query per server and type: each resolver answered the repeats from its own cache.
    assert default_server.query_count("example.com", "TXT") == 1
    assert alternate_server.query_count("example.com", "TXT") == 1
    assert default_server.query_count("example.com", "MX") == 1
    assert alternate_server.query_count("example.com", "MX") == 1
    assert default_server.query_count("_mta-sts.example.com", "TXT") == 1
    assert alternate_server.query_count("_mta-sts.example.com", "TXT") == 1
    # TXT, MX and the MTA-STS TXT record lookup_mx looks for (none published) each.
    assert resolvers.default.cached_entries == 3
    assert resolvers.get("alt").cached_entries == 3


@pytest.mark.parametrize(
    ("function", "args"),
    [
        ("dns.lookup_mx", ()),
        ("dns.lookup_addr", ()),
        ("dns.lookup_addr", ("Ipv4Only",)),
        ("dns.lookup_txt", ()),
    ],
)
async def test_an_undefined_resolver_name_raises_kumomtas_error(
    fns: dict[str, Any],
    default_server: TestDnsServer,
    function: str,
    args: tuple[str, ...],
) -> None:
    with pytest.raises(ConfigError, match=r"^resolver nope is not defined$"):
        await fns[function]("example.com", "nope", *args)
    assert default_server.queries == []  # not silently asked of the default resolver


async def test_a_redefined_name_answers_from_its_new_resolver(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
    default_server: TestDnsServer,
) -> None:
    assert await fns["dns.lookup_txt"]("example.com", "alt") == ["seen by the named resolver"]
    resolvers.define("alt", _hickory(default_server))
    assert await fns["dns.lookup_txt"]("example.com", "alt") == ["seen by the default resolver"]


async def test_a_named_resolvers_cache_holds_at_most_its_cache_size(
    resolvers: NamedResolvers,
    alternate_server: TestDnsServer,
) -> None:
    resolvers.define("small", _hickory(alternate_server, cache_size=4))
    fns = make_dns_functions(resolvers)
    for index in range(20):
        name = f"d{index}.example"
        alternate_server.set_records(name, "MX", [(10, f"mx.{name}")])
        alternate_server.set_records(name, "TXT", [name])
        assert (await fns["dns.lookup_mx"](name, "small"))["hosts"] == [f"mx.{name}."]
        assert await fns["dns.lookup_txt"](name, "small") == [name]
    small = resolvers.get("small")
    assert small.cached_entries == 4
    assert len(small._built_mx) <= 4  # the MailExchangers built from cached MX answers
    assert resolvers.default.cached_entries == 0


async def test_named_mx_lookups_keep_to_the_default_resolvers_mx_timeout(
    resolvers: NamedResolvers,
    alternate_server: TestDnsServer,
) -> None:
    # The named resolver alone would wait 5 s; kumo.dns.set_mx_timeout is process-wide.
    resolvers.define("slow", _hickory(alternate_server, timeout="5s", attempts=0))
    make_mx_limit_functions(resolvers.default.mx_limits)["dns.set_mx_timeout"]("300ms")
    alternate_server.down()
    started = time.monotonic()
    with pytest.raises(DnsError, match=r"timed out after 0\.3s"):
        await make_dns_functions(resolvers)["dns.lookup_mx"]("example.com", "slow")
    assert time.monotonic() - started < 2.0


async def test_named_mx_failures_are_not_remembered_as_the_defaults_are(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
    default_server: TestDnsServer,
    alternate_server: TestDnsServer,
) -> None:
    make_mx_limit_functions(resolvers.default.mx_limits)["dns.set_mx_negative_cache_ttl"]("5m")
    for server in (default_server, alternate_server):
        server.set_servfail()
    with pytest.raises(DnsError, match="SERVFAIL"):
        await fns["dns.lookup_mx"]("example.com")
    with pytest.raises(DnsError, match="SERVFAIL"):
        await fns["dns.lookup_mx"]("example.com", "alt")
    for server in (default_server, alternate_server):
        server.set_servfail(False)
    # KumoMTA's named lookups skip its MX cache, where failures are remembered.
    assert (await fns["dns.lookup_mx"]("example.com", "alt"))["hosts"][0] == "mx1.alt.test."
    with pytest.raises(DnsError, match="SERVFAIL"):
        await fns["dns.lookup_mx"]("example.com")


async def test_named_mx_lookups_share_the_default_resolvers_concurrency_slots(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
) -> None:
    limits = make_mx_limit_functions(resolvers.default.mx_limits)
    limits["dns.set_mx_concurrency_limit"](1)
    limits["dns.set_mx_timeout"]("200ms")
    async with resolvers.default.mx_limits.slot():  # the only slot is busy
        with pytest.raises(DnsError, match="timed out"):
            await fns["dns.lookup_mx"]("example.com", "alt")
    assert (await fns["dns.lookup_mx"]("example.com", "alt"))["hosts"][0] == "mx1.alt.test."
