"""The limits that protect a verifier from hostile zones (RFC 7208 §4.6.4), loops,
multiple records and DNS failures: each ends in the right error, quickly."""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.common.dns_server import TestDnsServer
from kumocore.dns import Resolver
from kumocore.spf import CheckHostParams, check_host
from tests.core.spf.conftest import Check

Zone = Callable[..., None]


async def test_ten_dns_terms_are_allowed_and_ip_terms_do_not_count(
    zone: Zone, spf: Check,
) -> None:
    terms = " ".join(f"a:h{i}.example.com" for i in range(10))
    zone("example.com", TXT=f"v=spf1 ip4:198.51.100.1 {terms} ip6:2001:db8::1 -all")
    for i in range(10):
        zone(f"h{i}.example.com", A=["203.0.113.1"])
    zone("h9.example.com", A=["192.0.2.1"])
    assert (await spf("example.com", "192.0.2.1")).disposition == "pass"


async def test_the_eleventh_dns_term_is_a_permerror(zone: Zone, spf: Check) -> None:
    terms = " ".join(f"a:h{i}.example.com" for i in range(11))
    zone("example.com", TXT=f"v=spf1 {terms} -all")
    for i in range(11):
        zone(f"h{i}.example.com", A=["203.0.113.1"])
    result = await spf("example.com", "192.0.2.1")
    assert result.disposition == "permerror"
    assert result.reason.startswith("DNS lookup limits exceeded: 'a:h10.example.com'")


async def test_a_chain_of_eleven_includes_is_a_permerror(
    zone: Zone, spf: Check, dns_server: TestDnsServer,
) -> None:
    for i in range(12):
        zone(f"i{i}.example.com", TXT=f"v=spf1 include:i{i + 1}.example.com -all")
    result = await spf("i0.example.com", "192.0.2.1")
    assert result.disposition == "permerror"
    assert "DNS lookup limits exceeded" in result.reason
    assert dns_server.query_count("i11.example.com") == 0  # never asked


async def test_include_loop_ends_in_permerror_after_few_queries(
    zone: Zone, spf: Check, dns_server: TestDnsServer,
) -> None:
    zone("loop.example.com", TXT="v=spf1 include:loop.example.com -all")
    started = time.monotonic()
    result = await spf("loop.example.com", "192.0.2.1")
    assert result.disposition == "permerror"
    assert time.monotonic() - started < 1.0
    assert len(dns_server.queries) <= 11


async def test_redirect_loop_ends_in_permerror(zone: Zone, spf: Check) -> None:
    zone("a.example.com", TXT="v=spf1 redirect=b.example.com")
    zone("b.example.com", TXT="v=spf1 redirect=a.example.com")
    result = await spf("a.example.com", "192.0.2.1")
    assert result.disposition == "permerror"
    assert "DNS lookup limits exceeded: 'redirect=" in result.reason


async def test_two_void_lookups_are_allowed_the_third_is_a_permerror(
    zone: Zone, spf: Check,
) -> None:
    zone("two.example.com", TXT="v=spf1 a:gone1.example.com mx:gone2.example.com ?all")
    assert (await spf("two.example.com", "192.0.2.1")).disposition == "neutral"
    zone("three.example.com",
         TXT="v=spf1 a:gone1.example.com exists:gone2.example.com a:gone3.example.com ?all")
    zone("gone3.example.com", TXT="exists, but has no address")  # NODATA is void too
    result = await spf("three.example.com", "192.0.2.1")
    assert result.disposition == "permerror"
    assert result.reason.startswith("void lookup limit exceeded: gone3.example.com")


async def test_more_than_ten_mx_hosts_is_a_permerror(zone: Zone, spf: Check) -> None:
    zone("ten.example.com", TXT="v=spf1 mx -all",
         MX=[(i, f"mx{i}.example.com") for i in range(10)])
    zone("eleven.example.com", TXT="v=spf1 mx -all",
         MX=[(i, f"mx{i}.example.com") for i in range(11)])
    for i in range(11):
        zone(f"mx{i}.example.com", A=["203.0.113.1"])
    zone("mx9.example.com", A=["192.0.2.1"])
    assert (await spf("ten.example.com", "192.0.2.1")).disposition == "pass"
    result = await spf("eleven.example.com", "192.0.2.1")
    assert result.disposition == "permerror"
    assert result.reason.startswith("too many MX records for eleven.example.com")


async def test_ptr_validates_at_most_ten_names(
    zone: Zone, spf: Check, dns_server: TestDnsServer,
) -> None:
    names = [f"p{i}.example.com" for i in range(15)]
    zone("example.com", TXT="v=spf1 ptr -all")
    zone("1.2.0.192.in-addr.arpa", PTR=names)
    for name in names:
        zone(name, A=["203.0.113.1"])
    assert (await spf("example.com", "192.0.2.1")).disposition == "fail"
    asked = [q for q in dns_server.queries if q[1] == "A" and q[0] in names]
    assert len(asked) == 10


async def test_multiple_spf_records_are_a_permerror(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT=["v=spf1 +all", "v=spf1 -all", "other text"])
    result = await spf("example.com", "192.0.2.1")
    assert (result.disposition, result.reason) == (
        "permerror", "2 SPF records found for example.com")


async def test_a_giant_record_is_a_quick_permerror(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 " + "ip4:192.0.2.1 " * 900 + "-all")
    started = time.monotonic()
    result = await spf("example.com", "192.0.2.1")
    assert result.disposition == "permerror"
    assert "more than the 8192" in result.reason
    assert time.monotonic() - started < 1.0


async def test_servfail_on_the_record_is_a_temperror(
    zone: Zone, spf: Check, dns_server: TestDnsServer,
) -> None:
    zone("example.com", TXT="v=spf1 -all")
    dns_server.set_servfail(names=["example.com"])
    result = await spf("example.com", "192.0.2.1")
    assert result.disposition == "temperror"
    assert "example.com" in result.reason


async def test_servfail_inside_an_include_or_a_lookup_is_a_temperror(
    zone: Zone, spf: Check, dns_server: TestDnsServer,
) -> None:
    zone("inc.example.com", TXT="v=spf1 include:broken.example.net -all")
    zone("a.example.com", TXT="v=spf1 a:broken.example.net -all")
    dns_server.set_servfail(names=["broken.example.net"])
    result = await spf("inc.example.com", "192.0.2.1")
    assert result.disposition == "temperror"
    assert result.reason.startswith("include:broken.example.net: ")
    assert (await spf("a.example.com", "192.0.2.1")).disposition == "temperror"


async def test_a_failing_ptr_lookup_only_makes_ptr_not_match(
    zone: Zone, spf: Check, dns_server: TestDnsServer,
) -> None:
    zone("example.com", TXT="v=spf1 ptr ~all")
    dns_server.set_servfail(names=["1.2.0.192.in-addr.arpa"])
    assert (await spf("example.com", "192.0.2.1")).disposition == "softfail"


async def test_a_silent_name_server_is_a_temperror(
    zone: Zone, spf: Check, dns_server: TestDnsServer,
) -> None:
    dns_server.down()
    result = await spf("example.com", "192.0.2.1")
    assert result.disposition == "temperror"
    assert "timed out" in result.reason


async def test_the_whole_check_is_bounded_in_time(
    zone: Zone, resolver: Resolver, dns_server: TestDnsServer,
) -> None:
    dns_server.down()
    started = time.monotonic()
    result = await check_host(resolver, CheckHostParams("example.com", "192.0.2.1"),
                              timeout=0.1)
    assert (result.disposition, result.reason) == (
        "temperror", "SPF evaluation took longer than 0.1s")
    assert time.monotonic() - started < 0.4
