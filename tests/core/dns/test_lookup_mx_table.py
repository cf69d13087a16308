"""``kumo.dns.lookup_mx``'s table field by field against KumoMTA's MailExchanger: the
test DNS server (with DNSSEC-validated names), KumoMTA's ``Test`` resolver, and MTA-STS
policies served over HTTPS on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from kumocore.delivery.mta_sts import MtaSts
from kumocore.dns import DnsError, Resolver, make_dns_functions
from kumocore.dns.lists import NamedResolvers
from kumocore.node import cache_capacity
from kumocore.testing.dns import TestDnsServer
from tests.support.mta_sts_server import PolicyServer, policy_server

ZONES: dict[str, dict[str, Any]] = {
    "plain.example": {"MX": [(20, "MX2.plain.example"), (10, "mx1.plain.example")]},
    "bare.example": {"A": ["192.0.2.9"]},
    "nullmx.example": {"MX": [(0, ".")]},
    "signed.example": {"MX": [(10, "mx.signed.example")], "SECURE": True},
    "bare.signed.example": {"A": ["192.0.2.10"], "SECURE": True},
    "sts.example": {
        "MX": [(10, "mx1.sts.example"), (10, "mx2.sts.example"), (20, "backup.relay.example")]
    },
}
STS_DOMAINS = ("sts.example", "bare.example", "nullmx.example")


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    with TestDnsServer(ZONES) as server:
        yield server


@pytest.fixture
async def policies() -> AsyncIterator[PolicyServer]:
    async with policy_server(*STS_DOMAINS) as server:
        yield server


@pytest.fixture
def resolvers(dns: TestDnsServer) -> NamedResolvers:
    return NamedResolvers(Resolver([dns.address], timeout=0.5))


@pytest.fixture
def fns(resolvers: NamedResolvers) -> dict[str, Any]:
    return make_dns_functions(resolvers)


def _delivery_policies(resolver: Resolver, server: PolicyServer) -> MtaSts:
    """What the queue manager makes for its resolver, pointed at the loopback server."""
    return MtaSts(resolver, https_port=server.port, ssl_context=server.client_context())


async def test_an_ordinary_domain_has_every_field_of_kumomtas_table(
    fns: dict[str, Any],
) -> None:
    assert await fns["dns.lookup_mx"]("Plain.Example") == {
        "domain_name": "plain.example.",
        "hosts": ["mx1.plain.example.", "mx2.plain.example."],
        "site_name": "(mx1|mx2).plain.example",
        "by_pref": {10: ["mx1.plain.example."], 20: ["mx2.plain.example."]},
        "is_domain_literal": False,
        "is_secure": False,
        "is_mx": True,
        "mta_sts": "None",
    }


async def test_implicit_mx_port_and_literal_tables_have_every_field(
    fns: dict[str, Any],
    dns: TestDnsServer,
) -> None:
    assert await fns["dns.lookup_mx"]("bare.example") == {
        "domain_name": "bare.example.",
        "hosts": ["bare.example."],
        "site_name": "bare.example",
        "by_pref": {1: ["bare.example."]},
        "is_domain_literal": False,
        "is_secure": False,
        "is_mx": False,
        "mta_sts": "None",
    }
    ported = await fns["dns.lookup_mx"]("plain.example:2525")
    assert ported["domain_name"] == "plain.example."  # the port is the hosts', as KumoMTA
    assert ported["hosts"] == ["mx1.plain.example.:2525", "mx2.plain.example.:2525"]
    assert await fns["dns.lookup_mx"]("[IPv6:2001:db8::1]") == {
        "domain_name": "[IPv6:2001:db8::1]",
        "hosts": ["2001:db8::1"],
        "site_name": "2001:db8::1",
        "by_pref": {1: ["2001:db8::1"]},
        "is_domain_literal": True,
        "is_secure": False,
        "is_mx": False,
        "mta_sts": "None",
    }
    # Neither an implicit MX nor a literal is subject to MTA-STS: nothing was looked up.
    assert dns.query_count("_mta-sts.bare.example") == 0


async def test_is_secure_comes_from_a_validating_resolvers_ad_bit(
    fns: dict[str, Any],
    dns: TestDnsServer,
) -> None:
    assert (await fns["dns.lookup_mx"]("signed.example"))["is_secure"] is False
    fns["dns.configure_resolver"](name_servers=[dns.address], options={"validate": True})
    signed = await fns["dns.lookup_mx"]("signed.example")
    assert (signed["hosts"], signed["is_secure"], signed["is_mx"]) == (
        ["mx.signed.example."],
        True,
        True,
    )
    # A secure NODATA for MX makes the implicit MX secure too (as KumoMTA).
    implicit = await fns["dns.lookup_mx"]("bare.signed.example")
    assert (implicit["is_mx"], implicit["is_secure"]) == (False, True)
    assert (await fns["dns.lookup_mx"]("plain.example"))["is_secure"] is False


async def test_a_test_resolver_zone_marked_secure_gives_the_same_shape(
    resolvers: NamedResolvers,
    fns: dict[str, Any],
) -> None:
    zone = "$ORIGIN z.example.\n@ 600 IN MX 5 mx.z.example.\n"
    resolvers.define("zones", {"Test": {"zones": [{"zone": zone, "secure": True}]}})
    resolvers.define("plainzones", {"Test": {"zones": [zone]}})
    expected = {
        "domain_name": "z.example.",
        "hosts": ["mx.z.example."],
        "site_name": "mx.z.example",
        "by_pref": {5: ["mx.z.example."]},
        "is_domain_literal": False,
        "is_secure": True,
        "is_mx": True,
        "mta_sts": "None",
    }
    assert await fns["dns.lookup_mx"]("z.example", "zones") == expected
    assert await fns["dns.lookup_mx"]("z.example", "plainzones") == {**expected, "is_secure": False}


async def test_an_enforce_policy_leaves_only_the_allowed_hosts_and_says_enforce(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
    dns: TestDnsServer,
    policies: PolicyServer,
) -> None:
    _delivery_policies(resolvers.default, policies)
    policies.publish(dns, "sts.example", "enforce", "*.sts.example")
    assert await fns["dns.lookup_mx"]("sts.example") == {
        "domain_name": "sts.example.",
        "hosts": ["mx1.sts.example.", "mx2.sts.example."],
        "site_name": "(mx1|mx2).sts.example",
        "by_pref": {10: ["mx1.sts.example.", "mx2.sts.example."]},
        "is_domain_literal": False,
        "is_secure": False,
        "is_mx": True,
        "mta_sts": "Enforce",
    }


async def test_a_testing_policy_keeps_every_host_and_says_testing(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
    dns: TestDnsServer,
    policies: PolicyServer,
) -> None:
    _delivery_policies(resolvers.default, policies)
    policies.publish(dns, "sts.example", "testing", "*.sts.example")
    table = await fns["dns.lookup_mx"]("sts.example")
    assert table["hosts"] == ["mx1.sts.example.", "mx2.sts.example.", "backup.relay.example."]
    assert table["site_name"] == "(mx1|mx2|backup).(sts|relay).example"
    assert table["mta_sts"] == "Testing"


async def test_an_enforce_policy_allowing_no_host_fails_the_lookup_as_kumomta(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
    dns: TestDnsServer,
    policies: PolicyServer,
) -> None:
    _delivery_policies(resolvers.default, policies)
    policies.publish(dns, "sts.example", "enforce", "mx9.elsewhere.example")
    with pytest.raises(DnsError, match=r"MTA-STS enforce policy for sts\.example permits none"):
        await fns["dns.lookup_mx"]("sts.example")


async def test_the_policy_lookup_and_delivery_share_one_cache_and_one_fetch(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
    dns: TestDnsServer,
    policies: PolicyServer,
) -> None:
    delivery = _delivery_policies(resolvers.default, policies)
    policies.publish(dns, "sts.example", "enforce", "*.sts.example")
    routed = await delivery.apply("sts.example", await resolvers.default.lookup_mx("sts.example"))
    for _ in range(3):
        table = await fns["dns.lookup_mx"]("sts.example")
    assert table["hosts"] == routed.hosts and table["site_name"] == routed.site_name
    assert delivery.fetches == 1 and len(policies.requests) == 1
    assert dns.query_count("_mta-sts.sts.example", "TXT") == 1


async def test_without_delivery_policies_the_lookup_makes_and_keeps_its_own(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
    dns: TestDnsServer,
) -> None:
    # A policy may look up MX before any queue manager exists (at load time): no policy
    # is published here, so this needs no HTTPS, only the _mta-sts lookup, once.
    assert resolvers.default.mta_sts is None
    for _ in range(2):
        assert (await fns["dns.lookup_mx"]("plain.example"))["mta_sts"] == "None"
    assert isinstance(resolvers.default.mta_sts, MtaSts)
    assert dns.query_count("_mta-sts.plain.example", "TXT") == 1


async def test_set_mta_sts_enabled_false_reports_none_and_looks_nothing_up(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
    dns: TestDnsServer,
    policies: PolicyServer,
) -> None:
    _delivery_policies(resolvers.default, policies)
    resolvers.define("alt", {"Hickory": {"name_servers": [dns.address]}})
    policies.publish(dns, "sts.example", "enforce", "mx9.elsewhere.example")
    fns["dns.set_mta_sts_enabled"](False)
    for name in (None, "alt"):  # a node-wide switch in KumoMTA: named resolvers too
        table = await fns["dns.lookup_mx"]("sts.example", name)
        assert (len(table["hosts"]), table["mta_sts"]) == (3, "None")
    assert dns.query_count("_mta-sts.sts.example") == 0 and policies.requests == []


async def test_a_named_resolver_discovers_the_policy_through_itself_into_the_shared_cache(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
    dns: TestDnsServer,
    policies: PolicyServer,
) -> None:
    delivery = _delivery_policies(resolvers.default, policies)  # the fetch settings it follows
    with TestDnsServer({"sts.example": ZONES["sts.example"]}) as other:
        resolvers.define("alt", {"Hickory": {"name_servers": [other.address]}})
        policies.publish(other, "sts.example", "enforce", "*.sts.example")
        named = await fns["dns.lookup_mx"]("sts.example", "alt")
        assert other.query_count("_mta-sts.sts.example", "TXT") == 1
    assert (named["mta_sts"], named["site_name"]) == ("Enforce", "(mx1|mx2).sts.example")
    # KumoMTA keeps one policy cache per node: the default resolver, whose DNS publishes
    # no _mta-sts record, still has the cached policy in force (RFC 8461 section 5.1).
    default = await fns["dns.lookup_mx"]("sts.example")
    assert dns.query_count("_mta-sts.sts.example", "TXT") == 1
    assert (default["mta_sts"], default["hosts"]) == ("Enforce", named["hosts"])
    assert len(policies.requests) == 1
    assert resolvers.get("alt").mta_sts is not delivery  # its own discovery, shared cache


async def test_a_policy_fetched_for_delivery_serves_a_named_resolver_with_the_same_id(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
    dns: TestDnsServer,
    policies: PolicyServer,
) -> None:
    delivery = _delivery_policies(resolvers.default, policies)
    policies.publish(dns, "sts.example", "enforce", "*.sts.example")
    await delivery.apply("sts.example", await resolvers.default.lookup_mx("sts.example"))
    resolvers.define("alt", {"Hickory": {"name_servers": [dns.address]}})
    for _ in range(2):
        named = await fns["dns.lookup_mx"]("sts.example", "alt")
    assert named["mta_sts"] == "Enforce"
    assert len(policies.requests) == 1  # the named resolver found the same id: no refetch
    # A new id seen through another named resolver is fetched once and replaces the
    # policy for every resolver, delivery's included.
    policies.publish(dns, "sts.example", "testing", "*.sts.example", policy_id="2")
    resolvers.define("fresh", {"Hickory": {"name_servers": [dns.address]}})
    assert (await fns["dns.lookup_mx"]("sts.example", "fresh"))["mta_sts"] == "Testing"
    assert len(policies.requests) == 2
    delivery._recent.clear()  # as RECHECK_INTERVAL later
    resolvers.default.configure([dns.address])  # forget the cached TXT record
    routed = await delivery.apply("sts.example", await resolvers.default.lookup_mx("sts.example"))
    assert routed.mta_sts == "testing" and len(policies.requests) == 2


async def test_the_shared_policy_cache_stays_bounded(
    resolvers: NamedResolvers,
    dns: TestDnsServer,
    policies: PolicyServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(cache_capacity._capacities, "mta_sts_policy", 2)
    delivery = _delivery_policies(resolvers.default, policies)
    resolvers.define("alt", {"Hickory": {"name_servers": [dns.address]}})
    named = delivery.following(resolvers.get("alt"))
    assert delivery.following(resolvers.get("alt")) is named  # one per resolver
    for domain in STS_DOMAINS:
        policies.publish(dns, domain, "testing", f"*.{domain}")
    for domain in STS_DOMAINS:  # three domains through the named resolver: one too many
        assert (await named.policy_for(domain)) is not None
    assert len(policies.requests) == 3
    assert named._cache is delivery._cache and len(delivery._cache) == 2


async def test_a_null_mx_under_a_testing_policy_says_testing_as_kumomta(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
    dns: TestDnsServer,
    policies: PolicyServer,
) -> None:
    _delivery_policies(resolvers.default, policies)
    policies.publish(dns, "nullmx.example", "testing", "*.example")
    table = await fns["dns.lookup_mx"]("nullmx.example")
    assert (table["hosts"], table["site_name"], table["mta_sts"]) == (["."], "", "Testing")
    assert dns.query_count("_mta-sts.nullmx.example", "TXT") == 1


async def test_a_null_mx_under_an_enforce_policy_fails_with_kumomtas_error(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
    dns: TestDnsServer,
    policies: PolicyServer,
) -> None:
    delivery = _delivery_policies(resolvers.default, policies)
    policies.publish(dns, "nullmx.example", "enforce", "*.example")
    expected = (
        'MTA-STS enforce policy for nullmx.example permits none of its MX hosts ["."]; '
        'allowed mx patterns: ["*.example"]. The destination is undeliverable until its '
        "MTA-STS policy is corrected."
    )
    with pytest.raises(DnsError) as failure:
        await fns["dns.lookup_mx"]("nullmx.example")
    assert str(failure.value) == expected
    # Routing applies the same policy: the queue waits (transient) instead of bouncing.
    with pytest.raises(DnsError) as routed:
        await delivery.apply("nullmx.example", await resolvers.default.lookup_mx("nullmx.example"))
    assert str(routed.value) == expected


async def test_the_enforce_error_lists_hosts_and_patterns_as_kumomta_does(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
    dns: TestDnsServer,
    policies: PolicyServer,
) -> None:
    _delivery_policies(resolvers.default, policies)
    policies.publish(dns, "sts.example", "enforce", "mx9.elsewhere.example", "*.other.example")
    with pytest.raises(DnsError) as failure:
        await fns["dns.lookup_mx"]("sts.example:2525")
    assert str(failure.value) == (
        "MTA-STS enforce policy for sts.example permits none of its MX hosts "
        '["mx1.sts.example.:2525", "mx2.sts.example.:2525", "backup.relay.example.:2525"]; '
        'allowed mx patterns: ["mx9.elsewhere.example", "*.other.example"]. The destination '
        "is undeliverable until its MTA-STS policy is corrected."
    )


@pytest.mark.parametrize(
    ("literal", "host"),
    [
        ("[10.0.0.1]:2525", "10.0.0.1:2525"),
        ("[10.0.0.1:2525]", "10.0.0.1:2525"),  # KumoMTA reads a port inside the brackets
        ("[IPv6:::1:25]", "::1:25"),  # KumoMTA's rule: an IPv6 literal has no port
    ],
)
async def test_a_domain_literal_with_a_port_puts_it_in_hosts_and_site_as_kumomta(
    fns: dict[str, Any],
    dns: TestDnsServer,
    literal: str,
    host: str,
) -> None:
    assert await fns["dns.lookup_mx"](literal) == {
        "domain_name": literal,
        "hosts": [host],
        "site_name": host,
        "by_pref": {1: [host]},
        "is_domain_literal": True,
        "is_secure": False,
        "is_mx": False,
        "mta_sts": "None",
    }
    assert dns.queries == []


@pytest.mark.parametrize(
    ("literal", "error"),
    [
        ("[10.0.0.1:25]:2525", "no closing"),  # a port both inside and outside
        ("[IPv6:::1]:25", "no closing"),
        ("[10.0.0.1", "no closing"),
        ("[IPv6:10.0.0.1]", "not an IPv6 address"),
        ("[10.0.0.1]:99999", "no closing"),
    ],
)
async def test_malformed_literals_with_ports_are_refused_as_kumomta(
    fns: dict[str, Any],
    dns: TestDnsServer,
    literal: str,
    error: str,
) -> None:
    with pytest.raises(DnsError, match=error) as failure:
        await fns["dns.lookup_mx"](literal)
    assert failure.value.transient is False
    assert dns.queries == []


async def test_a_domain_with_a_port_gets_its_domains_policy_in_routing_and_the_table(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
    dns: TestDnsServer,
    policies: PolicyServer,
) -> None:
    # As KumoMTA: the policy of sts.example governs sts.example:2525 (its hosts keep the port).
    delivery = _delivery_policies(resolvers.default, policies)
    policies.publish(dns, "sts.example", "enforce", "*.sts.example")
    routed = await delivery.apply(
        "sts.example:2525", await resolvers.default.lookup_mx("sts.example:2525")
    )
    table = await fns["dns.lookup_mx"]("sts.example:2525")
    assert routed.hosts == table["hosts"] == ["mx1.sts.example.:2525", "mx2.sts.example.:2525"]
    assert (routed.mta_sts, table["mta_sts"]) == ("enforce", "Enforce")
    assert dns.query_count("_mta-sts.sts.example:2525") == 0
    policies.publish(dns, "sts.example", "enforce", "mx9.elsewhere.example", policy_id="2")
    delivery._recent.clear()  # as RECHECK_INTERVAL later
    resolvers.default.configure([dns.address])  # forget the cached TXT record
    with pytest.raises(DnsError, match=r"MTA-STS enforce policy for sts\.example permits"):
        await delivery.apply("sts.example:2525", await resolvers.default.lookup_mx("sts.example"))
