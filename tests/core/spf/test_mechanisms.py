"""Each mechanism and qualifier of RFC 7208 §5 and §4.6.2, evaluated against records
served by a real DNS server on loopback."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore.spf import SpfResult
from tests.core.spf.conftest import Check

Zone = Callable[..., None]


async def test_all_with_each_qualifier_gives_its_disposition(zone: Zone, spf: Check) -> None:
    for qualifier, disposition in (("", "pass"), ("+", "pass"), ("-", "fail"),
                                   ("~", "softfail"), ("?", "neutral")):
        zone(f"q{disposition}{qualifier or 'x'}.example", TXT=f"v=spf1 {qualifier}all")
        result = await spf(f"q{disposition}{qualifier or 'x'}.example", "192.0.2.1")
        assert result.disposition == disposition
        assert result.reason == f"matched '{qualifier}all' directive"


async def test_no_match_and_no_redirect_is_neutral(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 ip4:198.51.100.1")
    result = await spf("example.com", "192.0.2.1")
    assert (result.disposition, result.reason) == ("neutral", "default result")


async def test_ip4_network_matches_inside_the_prefix_only(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 ip4:192.0.2.0/28 -all")
    assert (await spf("example.com", "192.0.2.15")).disposition == "pass"
    assert (await spf("example.com", "192.0.2.16")).disposition == "fail"


async def test_ip6_network_matches_ipv6_clients_only(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 ip6:2001:db8:1::/48 -all")
    assert (await spf("example.com", "2001:db8:1:ffff::25")).disposition == "pass"
    assert (await spf("example.com", "2001:db8:2::25")).disposition == "fail"
    assert (await spf("example.com", "192.0.2.1")).disposition == "fail"


async def test_ipv4_mapped_ipv6_client_is_checked_as_ipv4(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 ip4:192.0.2.1 -all")
    assert (await spf("example.com", "::ffff:192.0.2.1")).disposition == "pass"


async def test_a_matches_the_domains_own_addresses_with_cidr(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 a a:other.example.org/24 -all", A=["192.0.2.10"])
    zone("other.example.org", A=["198.51.100.200"])
    assert (await spf("example.com", "192.0.2.10")).reason == "matched 'a' directive"
    result = await spf("example.com", "198.51.100.3")
    assert (result.disposition, result.reason) == (
        "pass", "matched 'a:other.example.org/24' directive")
    assert (await spf("example.com", "203.0.113.1")).disposition == "fail"


async def test_a_uses_aaaa_and_the_ipv6_cidr_for_ipv6_clients(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 a//64 -all", A=["192.0.2.10"], AAAA=["2001:db8::1"])
    assert (await spf("example.com", "2001:db8::ffff")).disposition == "pass"
    assert (await spf("example.com", "2001:db8:0:1::1")).disposition == "fail"


async def test_mx_matches_addresses_of_the_mx_hosts(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 mx -all", MX=[(10, "mx1.example.com"),
                                                  (20, "mx2.example.net")])
    zone("mx1.example.com", A=["192.0.2.21"])
    zone("mx2.example.net", A=["198.51.100.22"])
    assert (await spf("example.com", "198.51.100.22")).reason == "matched 'mx' directive"
    assert (await spf("example.com", "192.0.2.22")).disposition == "fail"


async def test_mx_with_cidr_and_explicit_domain(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 mx:mail.example.org/30 -all")
    zone("mail.example.org", MX=[(5, "mx.mail.example.org")])
    zone("mx.mail.example.org", A=["192.0.2.4"])
    assert (await spf("example.com", "192.0.2.7")).disposition == "pass"
    assert (await spf("example.com", "192.0.2.8")).disposition == "fail"


async def test_mx_does_not_fall_back_to_the_domains_a_record(zone: Zone, spf: Check) -> None:
    # No MX at all: RFC 7208 §5.4 has no implicit MX, so the A record does not count.
    zone("example.com", TXT="v=spf1 mx -all", A=["192.0.2.1"])
    assert (await spf("example.com", "192.0.2.1")).disposition == "fail"


async def test_ptr_matches_a_validated_name_under_the_domain(
    zone: Zone, spf: Check, dns_server: TestDnsServer,
) -> None:
    zone("example.com", TXT="v=spf1 ptr -all")
    zone("5.2.0.192.in-addr.arpa", PTR=["mta.example.com", "forged.example.com"])
    zone("mta.example.com", A=["192.0.2.5"])
    zone("forged.example.com", A=["203.0.113.1"])
    assert (await spf("example.com", "192.0.2.5")).reason == "matched 'ptr' directive"
    # A PTR name whose forward lookup does not give the client back is not validated.
    zone("6.2.0.192.in-addr.arpa", PTR=["forged.example.com"])
    assert (await spf("example.com", "192.0.2.6")).disposition == "fail"


async def test_ptr_with_domain_and_a_pointer_outside_it(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 ptr:example.net -all")
    zone("5.2.0.192.in-addr.arpa", PTR=["mta.example.com"])
    zone("mta.example.com", A=["192.0.2.5"])
    assert (await spf("example.com", "192.0.2.5")).disposition == "fail"


async def test_exists_matches_on_any_a_record(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 exists:%{ir}.allow.example.com -all")
    zone("1.2.0.192.allow.example.com", A=["127.0.0.2"])
    assert (await spf("example.com", "192.0.2.1")).disposition == "pass"
    assert (await spf("example.com", "192.0.2.2")).disposition == "fail"


async def test_include_pass_matches_and_other_results_do_not(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 include:a.example.net include:b.example.net ~all")
    zone("a.example.net", TXT="v=spf1 ip4:192.0.2.1 -all")
    zone("b.example.net", TXT="v=spf1 ip4:192.0.2.2 ?all")
    assert (await spf("example.com", "192.0.2.1")).reason == \
        "matched 'include:a.example.net' directive"
    assert (await spf("example.com", "192.0.2.2")).reason == \
        "matched 'include:b.example.net' directive"
    # Included fail and neutral only mean "no match": evaluation goes on to ~all.
    assert (await spf("example.com", "192.0.2.3")).disposition == "softfail"


async def test_include_of_a_domain_without_spf_is_a_permerror(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 include:nospf.example.net -all")
    zone("nospf.example.net", TXT="just some text")
    result = await spf("example.com", "192.0.2.1")
    assert result.disposition == "permerror"
    assert result.reason == "include:nospf.example.net: no SPF records found for nospf.example.net"


async def test_redirect_replaces_the_record_when_nothing_matched(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 ip4:203.0.113.1 redirect=_spf.example.net")
    zone("_spf.example.net", TXT="v=spf1 ip4:192.0.2.0/24 -all")
    assert (await spf("example.com", "192.0.2.9")).disposition == "pass"
    assert (await spf("example.com", "198.51.100.9")).disposition == "fail"
    assert (await spf("example.com", "203.0.113.1")).disposition == "pass"


async def test_redirect_is_ignored_when_the_record_has_all(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 redirect=_spf.example.net ?all")
    zone("_spf.example.net", TXT="v=spf1 -all")
    assert (await spf("example.com", "192.0.2.9")).disposition == "neutral"


async def test_redirect_to_a_domain_without_spf_is_a_permerror(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 redirect=missing.example.net")
    result = await spf("example.com", "192.0.2.9")
    assert result.disposition == "permerror"
    assert "missing.example.net" in result.reason


async def test_exp_explains_a_fail_with_expanded_text(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 -all exp=explain._spf.%{d}")
    zone("explain._spf.example.com", TXT="%{i} may not send for %{d}; see https://%{d}/spf")
    result = await spf("example.com", "192.0.2.9", sender="joe@example.com")
    assert (result.disposition, result.reason) == (
        "fail", "192.0.2.9 may not send for example.com; see https://example.com/spf")


async def test_unusable_exp_falls_back_to_the_matched_directive(
    zone: Zone, spf: Check,
) -> None:
    zone("one.example", TXT="v=spf1 -all exp=missing.example")
    zone("two.example", TXT="v=spf1 -all exp=twice.example")
    zone("twice.example", TXT=["first", "second"])
    zone("three.example", TXT="v=spf1 -all exp=bad.example")
    zone("bad.example", TXT="broken %{z} macro")
    for domain in ("one.example", "two.example", "three.example"):
        result = await spf(domain, "192.0.2.9")
        assert (result.disposition, result.reason) == ("fail", "matched '-all' directive")


async def test_exp_of_an_included_record_is_not_used(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 include:inner.example.net -all")
    zone("inner.example.net", TXT="v=spf1 -all exp=why.example.net")
    zone("why.example.net", TXT="inner explanation")
    result = await spf("example.com", "192.0.2.9")
    assert (result.disposition, result.reason) == ("fail", "matched '-all' directive")


async def test_exp_of_a_redirect_target_explains_its_fail(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 redirect=target.example.net exp=outer.example.com")
    zone("target.example.net", TXT="v=spf1 -all exp=inner.example.net")
    zone("outer.example.com", TXT="outer explanation")
    zone("inner.example.net", TXT="explained by %{d}")
    result = await spf("example.com", "192.0.2.9")
    assert result.reason == "explained by target.example.net"


@pytest.mark.parametrize("domain", ["localhost", "a..example.com", "x" * 64 + ".example.com"])
async def test_a_malformed_or_single_label_domain_is_none(spf: Check, domain: str) -> None:
    result = await spf(domain, "192.0.2.1")
    assert result.disposition == "none"
    assert result.reason.startswith("invalid domain name")


async def test_no_record_and_no_domain_are_none_with_kumomtas_reason(
    zone: Zone, spf: Check,
) -> None:
    zone("example.com", TXT="not spf")
    assert await spf("example.com", "192.0.2.1") == SpfResult(
        "none", "no SPF records found for example.com")
    # KumoMTA checks for an empty answer first, so a missing domain reads the same
    # (policy-extras.mail_auth's own self-test expects this text for an unknown domain).
    result = await spf("nxdomain.example.com", "192.0.2.1")
    assert (result.disposition, result.reason) == (
        "none", "no SPF records found for nxdomain.example.com")


async def test_a_syntax_error_after_a_matching_term_is_still_a_permerror(
    zone: Zone, spf: Check,
) -> None:
    zone("example.com", TXT="v=spf1 +all bogus:term")
    result = await spf("example.com", "192.0.2.1")
    assert result.disposition == "permerror"
    assert "bogus:term" in result.reason
