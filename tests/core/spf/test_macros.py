"""Macro expansion (RFC 7208 §7): the RFC's own examples, escapes, URL escaping, the
``p`` letter through real PTR lookups, and truncation of long names."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore.spf.macros import MacroValues, expand, parse_domain_spec, parse_macro_string
from tests.core.spf.conftest import Check

Zone = Callable[..., None]


async def _unknown(domain: str) -> str:
    return "unknown"


def _values(ip: str = "192.0.2.3") -> MacroValues:
    return MacroValues(
        sender="strong-bad@email.example.com", domain="email.example.com",
        client_ip=ipaddress.ip_address(ip), helo="mx.example.org",
        receiver="receiver.example.net", now=1700000000, validated_name=_unknown)


RFC_EXAMPLES = [
    ("%{s}", "strong-bad@email.example.com"),
    ("%{o}", "email.example.com"),
    ("%{d}", "email.example.com"),
    ("%{d4}", "email.example.com"),
    ("%{d3}", "email.example.com"),
    ("%{d2}", "example.com"),
    ("%{d1}", "com"),
    ("%{dr}", "com.example.email"),
    ("%{d2r}", "example.email"),
    ("%{l}", "strong-bad"),
    ("%{l-}", "strong.bad"),
    ("%{lr}", "strong-bad"),
    ("%{lr-}", "bad.strong"),
    ("%{l1r-}", "strong"),
    ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
    ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
    ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
    ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
    ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
]


@pytest.mark.parametrize(("spec", "expected"), RFC_EXAMPLES)
async def test_rfc_7208_section_7_4_examples(spec: str, expected: str) -> None:
    assert await expand(parse_domain_spec(spec), _values()) == expected


async def test_ipv6_client_expands_to_nibbles_and_ip6() -> None:
    spec = parse_domain_spec("%{ir}.%{v}._spf.%{d2}")
    assert await expand(spec, _values("2001:db8::cb01")) == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com")


async def test_escapes_and_explanation_only_letters() -> None:
    spec = parse_macro_string("100%% from %{c} via %{r} at %{t}%_%-%{h}", exp=True)
    assert await expand(spec, _values()) == (
        "100% from 192.0.2.3 via receiver.example.net at 1700000000 %20mx.example.org")


async def test_upper_case_letters_are_url_escaped() -> None:
    spec = parse_macro_string("%{S} %{L}", exp=True)
    assert await expand(spec, _values()) == "strong-bad%40email.example.com strong-bad"


async def test_exists_queries_the_expanded_name(
    zone: Zone, spf: Check, dns_server: TestDnsServer,
) -> None:
    zone("example.com", TXT="v=spf1 exists:%{l}.%{o}.%{h}._check.example.com -all")
    zone("joe.example.com.helo.example.org._check.example.com", A=["127.0.0.2"])
    result = await spf("example.com", "192.0.2.1", sender="joe@example.com",
                       helo="helo.example.org")
    assert result.disposition == "pass"
    assert dns_server.query_count("joe.example.com.helo.example.org._check.example.com") == 1


async def test_p_expands_to_the_validated_name_or_unknown(zone: Zone, spf: Check) -> None:
    zone("example.com", TXT="v=spf1 exists:%{p}._p.example.com -all")
    zone("7.2.0.192.in-addr.arpa", PTR=["other.example.net", "host.example.com"])
    zone("host.example.com", A=["192.0.2.7"])
    zone("other.example.net", A=["192.0.2.7"])
    # A name under the checked domain is preferred over any other validated one.
    zone("host.example.com._p.example.com", A=["127.0.0.2"])
    assert (await spf("example.com", "192.0.2.7")).disposition == "pass"
    zone("unknown._p.example.com", A=["127.0.0.2"])
    assert (await spf("example.com", "192.0.2.8")).disposition == "pass"


async def test_an_overlong_expansion_is_truncated_from_the_left(
    zone: Zone, spf: Check, dns_server: TestDnsServer,
) -> None:
    local = ".".join(["abcdefghij"] * 30)  # 329 characters of labels
    zone("example.com", TXT="v=spf1 exists:%{l}._x.example.com -all")
    result = await spf("example.com", "192.0.2.1", sender=f"{local}@example.com")
    assert result.disposition == "fail"
    [asked] = [name for name, rtype, _ in dns_server.queries if rtype == "A"]
    assert len(asked) <= 253 and asked.endswith("abcdefghij._x.example.com")


async def test_a_sender_without_local_part_expands_l_to_postmaster(
    zone: Zone, spf: Check,
) -> None:
    zone("example.com", TXT="v=spf1 exists:%{l}._x.example.com -all")
    zone("postmaster._x.example.com", A=["127.0.0.2"])
    assert (await spf("example.com", "192.0.2.1")).disposition == "pass"
    assert (await spf("example.com", "192.0.2.1", sender="@example.com")).disposition == "pass"
