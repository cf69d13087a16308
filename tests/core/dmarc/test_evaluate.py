"""DMARC evaluation against a real loopback DNS server: each policy with DKIM and SPF
alignment in relaxed and strict mode, the organizational-domain fallback with ``sp``,
missing, duplicate and bad records, DNS failures and ``pct`` sampling."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bench.common.dns_server import TestDnsServer
from tests.core.dmarc.conftest import Check, dkim_pass, spf_result

Zone = Callable[..., None]


@pytest.mark.parametrize(("policy", "disposition"), [
    ("none", "None"), ("quarantine", "Quarantine"), ("reject", "Reject"),
])
async def test_an_unaligned_message_gets_the_published_policy(
    zone: Zone, dmarc: Check, policy: str, disposition: str,
) -> None:
    zone("_dmarc.example.com", TXT=f"v=DMARC1; p={policy}; rua=mailto:agg@example.com")
    out = await dmarc("example.com", dkim=[dkim_pass("other.example")],
                      spf=spf_result("pass", "bounce@other.example"))
    assert out.disposition == disposition
    assert out.reason == "DMARC: SPF relaxed check failed"
    assert out.props == {"policy.p": policy, "policy.rua": "mailto:agg@example.com"}


@pytest.mark.parametrize(("mode", "signing_domain", "aligned"), [
    ("r", "example.com", True),
    ("r", "mail.example.com", True),
    ("r", "a.b.c.example.com", True),
    ("r", "example.net", False),
    ("s", "example.com", True),
    ("s", "EXAMPLE.com.", True),
    ("s", "mail.example.com", False),
])
async def test_dkim_alignment_follows_adkim(
    zone: Zone, dmarc: Check, mode: str, signing_domain: str, aligned: bool,
) -> None:
    zone("_dmarc.example.com", TXT=f"v=DMARC1; p=reject; adkim={mode}")
    out = await dmarc("example.com", dkim=[dkim_pass(signing_domain)])
    word = {"r": "relaxed", "s": "strict"}[mode]
    assert (out.disposition, out.reason) == (
        ("Pass", "Success") if aligned else ("Reject", f"DMARC: DKIM {word} check failed"))


@pytest.mark.parametrize(("mode", "mail_from", "aligned"), [
    ("r", "bounce@example.com", True),
    ("r", "bounce@helper.example.com", True),
    ("r", "bounce@helper.example.org", False),
    ("s", "bounce@example.com", True),
    ("s", "bounce@helper.example.com", False),
])
async def test_spf_alignment_follows_aspf(
    zone: Zone, dmarc: Check, mode: str, mail_from: str, aligned: bool,
) -> None:
    zone("_dmarc.example.com", TXT=f"v=DMARC1; p=quarantine; aspf={mode}")
    out = await dmarc("example.com", spf=spf_result("pass", mail_from))
    word = {"r": "relaxed", "s": "strict"}[mode]
    assert (out.disposition, out.reason) == (
        ("Pass", "Success") if aligned else ("Quarantine", f"DMARC: SPF {word} check failed"))


async def test_relaxed_alignment_compares_organizational_domains_on_both_sides(
    zone: Zone, dmarc: Check,
) -> None:
    # From a subdomain, signed by the parent: relaxed passes (RFC 7489 §3.1.1).
    zone("_dmarc.news.example.co.uk", TXT="v=DMARC1; p=reject")
    out = await dmarc("news.example.co.uk", dkim=[dkim_pass("example.co.uk")])
    assert out.disposition == "Pass"
    # Two registrants under the same public suffix are not aligned.
    out = await dmarc("news.example.co.uk", dkim=[dkim_pass("other.co.uk")])
    assert out.disposition == "Reject"


async def test_spf_helo_identity_counts_when_there_is_no_mail_from(
    zone: Zone, dmarc: Check,
) -> None:
    zone("_dmarc.example.com", TXT="v=DMARC1; p=reject")
    out = await dmarc("example.com", spf=spf_result("pass", helo="mx.example.com"))
    assert out.disposition == "Pass"
    out = await dmarc("example.com", spf=spf_result("pass"), mail_from_domain="example.com")
    assert out.disposition == "Pass"


async def test_results_other_than_pass_never_align(zone: Zone, dmarc: Check) -> None:
    zone("_dmarc.example.com", TXT="v=DMARC1; p=reject")
    out = await dmarc("example.com", dkim=[dkim_pass("example.com", "fail")],
                      spf=spf_result("softfail", "bounce@example.com"))
    assert (out.disposition, out.reason) == ("Reject", "No aligned DKIM or SPF")


async def test_one_aligned_signature_among_several_is_enough(zone: Zone, dmarc: Check) -> None:
    zone("_dmarc.example.com", TXT="v=DMARC1; p=reject; adkim=s")
    out = await dmarc("example.com", dkim=[dkim_pass("esp.example"), dkim_pass(None),
                                           dkim_pass("example.com")])
    assert (out.disposition, out.reason) == ("Pass", "Success")


async def test_a_passing_signature_without_d_is_reported(zone: Zone, dmarc: Check) -> None:
    zone("_dmarc.example.com", TXT="v=DMARC1; p=reject")
    out = await dmarc("example.com", dkim=[dkim_pass(None)])
    assert (out.disposition, out.reason) == ("Reject", "DMARC: DKIM signature missing 'd=' tag")


async def test_the_organizational_record_applies_sp_to_a_subdomain(
    zone: Zone, dmarc: Check, dns_server: TestDnsServer,
) -> None:
    zone("_dmarc.example.com", TXT="v=DMARC1; p=reject; sp=quarantine")
    out = await dmarc("mail.example.com", dkim=[dkim_pass("example.net")])
    assert out.disposition == "Quarantine"
    assert out.props == {"policy.p": "reject", "policy.sp": "quarantine"}
    assert dns_server.query_count("_dmarc.mail.example.com", "TXT") == 1
    assert dns_server.query_count("_dmarc.example.com", "TXT") == 1


async def test_the_organizational_record_without_sp_applies_p(zone: Zone, dmarc: Check) -> None:
    zone("_dmarc.example.com", TXT="v=DMARC1; p=reject")
    out = await dmarc("a.b.example.com", dkim=[dkim_pass("example.net")])
    assert out.disposition == "Reject"


async def test_a_record_at_the_from_domain_wins_over_the_organizational_one(
    zone: Zone, dmarc: Check, dns_server: TestDnsServer,
) -> None:
    zone("_dmarc.example.com", TXT="v=DMARC1; p=reject")
    zone("_dmarc.mail.example.com", TXT="v=DMARC1; p=none")
    out = await dmarc("mail.example.com")
    assert out.disposition == "None"
    assert dns_server.query_count("_dmarc.example.com") == 0


async def test_no_record_anywhere_is_a_permerror(zone: Zone, dmarc: Check) -> None:
    out = await dmarc("example.com")
    assert (out.disposition, out.reason) == ("PermError", "no DMARC records found for example.com")
    out = await dmarc("mail.example.com")
    assert (out.disposition, out.reason) == (
        "PermError", "no DMARC records found for _dmarc.example.com")


async def test_a_public_suffix_from_domain_has_no_organizational_domain(dmarc: Check) -> None:
    out = await dmarc("co.uk")
    assert (out.disposition, out.reason) == ("None", "no DMARC records found for co.uk")


async def test_other_txt_records_and_broken_dmarc_records_are_skipped(
    zone: Zone, dmarc: Check,
) -> None:
    zone("_dmarc.example.com", TXT=["v=spf1 -all", "v=DMARC1; p=bogus", "hello"])
    out = await dmarc("example.com")
    assert out.disposition == "PermError"
    zone("_dmarc.example.net", TXT=["v=spf1 -all", "v=DMARC1; p=bogus", "v=DMARC1; p=reject"])
    out = await dmarc("example.net")
    assert out.disposition == "Reject"


async def test_duplicate_records_mean_no_policy_and_fall_back(
    zone: Zone, dmarc: Check,
) -> None:
    # RFC 7489 §6.6.3: several records leave the publisher's intent unknown.
    zone("_dmarc.example.com", TXT=["v=DMARC1; p=reject", "v=DMARC1; p=none"])
    out = await dmarc("example.com")
    assert out.disposition == "PermError"
    zone("_dmarc.example.org", TXT="v=DMARC1; p=quarantine")
    zone("_dmarc.mail.example.org", TXT=["v=DMARC1; p=reject", "v=DMARC1; p=none"])
    out = await dmarc("mail.example.org")
    assert out.disposition == "Quarantine"


async def test_servfail_is_a_temperror(
    zone: Zone, dmarc: Check, dns_server: TestDnsServer,
) -> None:
    dns_server.set_servfail(names=["_dmarc.example.com"])
    out = await dmarc("example.com")
    assert (out.disposition, out.reason) == (
        "TempError", "DNS records could not be resolved for _dmarc.example.com")
    out = await dmarc("mail.example.com")
    assert (out.disposition, out.reason) == (
        "TempError", "DNS records could not be resolved for _dmarc.example.com")


async def test_a_failed_lookup_at_the_from_domain_still_tries_the_organizational_one(
    zone: Zone, dmarc: Check, dns_server: TestDnsServer,
) -> None:
    zone("_dmarc.example.com", TXT="v=DMARC1; p=reject")
    dns_server.set_servfail(names=["_dmarc.mail.example.com"])
    out = await dmarc("mail.example.com")
    assert out.disposition == "Reject"


async def test_pct_samples_messages_out_of_the_policy(zone: Zone, dmarc: Check) -> None:
    zone("_dmarc.example.com", TXT="v=DMARC1; p=reject; pct=30")
    inside = await dmarc("example.com", sample=lambda: 29)
    outside = await dmarc("example.com", sample=lambda: 30)
    assert inside.disposition == "Reject"
    assert (outside.disposition, outside.reason) == ("Pass", "sampled_out due to pct=30")
    assert outside.props == {"policy.p": "reject", "policy.pct": "30"}


async def test_a_from_domain_dns_cannot_hold_is_a_permerror(dmarc: Check) -> None:
    out = await dmarc("a" * 70 + ".example.com")  # a label over 63 characters
    assert out.disposition == "PermError"
