"""Parsing SPF records (RFC 7208 §4.5, §4.6, §5, §6): what is accepted and what is a
syntax error (a permerror at evaluation)."""

from __future__ import annotations

import ipaddress

import pytest

from kumocore.spf.record import MAX_RECORD_LENGTH, is_spf_record, parse_record
from kumocore.spf.result import SpfSyntaxError


def test_only_v_spf1_followed_by_space_or_end_is_an_spf_record() -> None:
    assert is_spf_record("v=spf1 -all")
    assert is_spf_record("V=SPF1")
    assert not is_spf_record("v=spf10 -all")
    assert not is_spf_record("v=spf2.0/pra -all")
    assert not is_spf_record("google-site-verification=abc")


def test_qualifiers_default_to_pass_and_are_kept_per_directive() -> None:
    record = parse_record("v=spf1 a -mx ~ptr ?exists:%{i}.bl.example +all")
    assert [(d.qualifier, d.mechanism.kind) for d in record.directives] == [
        ("+", "a"), ("-", "mx"), ("~", "ptr"), ("?", "exists"), ("+", "all")]


def test_dual_cidr_lengths_on_a_and_mx() -> None:
    record = parse_record("v=spf1 a/24 mx:mail.example.com//64 a:h.example.org/16//48 mx")
    assert [(d.mechanism.cidr4, d.mechanism.cidr6) for d in record.directives] == [
        (24, 128), (32, 64), (16, 48), (32, 128)]
    assert record.directives[1].mechanism.domain is not None
    assert record.directives[1].mechanism.domain.text == "mail.example.com"


def test_ip4_and_ip6_networks_with_and_without_prefix() -> None:
    record = parse_record("v=spf1 ip4:192.0.2.130/25 ip4:198.51.100.7 ip6:2001:db8::/32")
    networks = [d.mechanism.network for d in record.directives]
    assert networks == [ipaddress.ip_network("192.0.2.128/25"),
                        ipaddress.ip_network("198.51.100.7/32"),
                        ipaddress.ip_network("2001:db8::/32")]


def test_modifiers_may_stand_anywhere_and_unknown_ones_are_ignored() -> None:
    record = parse_record("v=spf1 redirect=_spf.example.com a foo=bar-%{d} exp=why.example.com")
    assert record.redirect is not None and record.redirect.text == "_spf.example.com"
    assert record.exp is not None and record.exp.text == "why.example.com"
    assert [d.mechanism.kind for d in record.directives] == ["a"]


def test_mechanism_names_are_case_insensitive_and_extra_spaces_tolerated() -> None:
    record = parse_record("v=spf1  IP4:192.0.2.1   MX  -ALL ")
    assert [d.mechanism.kind for d in record.directives] == ["ip4", "mx", "all"]


@pytest.mark.parametrize("text", [
    "v=spf1 foo",                          # unknown mechanism
    "v=spf1 -all:example.com",             # all takes no argument
    "v=spf1 include",                      # include needs a domain
    "v=spf1 exists:",                      # so does exists
    "v=spf1 ip4:192.0.2.1/33",             # prefix past 32
    "v=spf1 ip4:192.0.2.1/024",            # leading zero
    "v=spf1 ip6:2001:db8::/129",
    "v=spf1 ip4:2001:db8::1",              # wrong family
    "v=spf1 ip4:192.0.2.300",
    "v=spf1 a/33",
    "v=spf1 mx//129",
    "v=spf1 a:example",                    # a domain-spec ends in a top label
    "v=spf1 a:example.123",                # an all-numeric top label is not one
    "v=spf1 redirect=a.example redirect=b.example",
    "v=spf1 exp=a.example exp=b.example",
    "v=spf1 -exists:%(ir).sbl.example.org",
    "v=spf1 -exists:%{ir.sbl.example.org",  # unterminated macro
    "v=spf1 exists:%{x}.example.org",       # unknown macro letter
    "v=spf1 exists:%{c}.example.org",       # c/r/t only in exp text
    "v=spf1 exists:%{i0}.example.org",      # zero digits
    "v=spf1 exists:%{l;}.example.org",      # not a delimiter
    "v=spf1 a:100%.example.com",            # stray percent
    "v=spf1 mx \u200binclude:_spf.example.com",
    "v=spf1 -redirect=example.com",         # a modifier takes no qualifier
    "v=spf1 1bad=value",                    # modifier names start with a letter
])
def test_malformed_records_are_syntax_errors(text: str) -> None:
    with pytest.raises(SpfSyntaxError):
        parse_record(text)


def test_a_giant_record_is_refused_without_parsing_its_terms() -> None:
    giant = "v=spf1 " + " ".join(["ip4:192.0.2.1"] * 1000) + " -all"
    assert len(giant) > MAX_RECORD_LENGTH
    with pytest.raises(SpfSyntaxError, match="more than the 8192"):
        parse_record(giant)
