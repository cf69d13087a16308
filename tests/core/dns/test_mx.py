"""MX resolution against the loopback DNS server: the MailExchanger delivery and policy see."""

from __future__ import annotations

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore.dns import DnsError, MailExchanger, Resolver


async def test_gmail_hosts_are_ordered_by_preference_with_kumomta_site_name(
    resolver: Resolver,
) -> None:
    mx = await resolver.lookup_mx("Gmail.COM")
    assert mx.domain_name == "gmail.com."
    assert mx.hosts == [
        "gmail-smtp-in.l.google.com.",
        "alt1.gmail-smtp-in.l.google.com.",
        "alt2.gmail-smtp-in.l.google.com.",
        "alt3.gmail-smtp-in.l.google.com.",
        "alt4.gmail-smtp-in.l.google.com.",
    ]
    assert mx.site_name == "(alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com"
    assert mx.by_pref == {
        5: ["gmail-smtp-in.l.google.com."],
        10: ["alt1.gmail-smtp-in.l.google.com."],
        20: ["alt2.gmail-smtp-in.l.google.com."],
        30: ["alt3.gmail-smtp-in.l.google.com."],
        40: ["alt4.gmail-smtp-in.l.google.com."],
    }
    assert (mx.is_mx, mx.is_domain_literal, mx.is_secure) == (True, False, False)


@pytest.mark.parametrize(
    ("domain", "site_name"),
    [
        ("yahoo.com", "(mta5|mta6|mta7).am0.yahoodns.net"),
        ("outlook.com", "outlook-com.olc.protection.outlook.com"),
        ("comcast.net", "(mx1a1|mx2c1).comcast.net"),
        ("examplecorp.com", "mx.examplecorp.com"),
    ],
)
async def test_reference_providers_resolve_to_their_site_names(
    resolver: Resolver, domain: str, site_name: str
) -> None:
    assert (await resolver.lookup_mx(domain)).site_name == site_name


async def test_hosts_of_equal_preference_are_sorted_whatever_the_answer_order(
    dns_server: TestDnsServer, resolver: Resolver
) -> None:
    dns_server.set_records(
        "shuffled.example",
        "MX",
        [
            (20, "MX-B.shuffled.example"),
            (10, "mx-z.shuffled.example"),
            (20, "mx-a.shuffled.example"),
        ],
    )
    mx = await resolver.lookup_mx("shuffled.example")
    assert mx.by_pref == {
        10: ["mx-z.shuffled.example."],
        20: ["mx-a.shuffled.example.", "mx-b.shuffled.example."],
    }
    assert mx.hosts == [
        "mx-z.shuffled.example.",
        "mx-a.shuffled.example.",
        "mx-b.shuffled.example.",
    ]


async def test_domain_without_mx_records_uses_itself_as_implicit_mx(resolver: Resolver) -> None:
    mx = await resolver.lookup_mx("no-mx.example")
    assert mx.hosts == ["no-mx.example."]
    assert mx.by_pref == {1: ["no-mx.example."]}
    assert mx.site_name == "no-mx.example"
    assert mx.is_mx is False


async def test_null_mx_has_dot_host_and_empty_site_name(resolver: Resolver) -> None:
    mx = await resolver.lookup_mx("nullmx.example")
    assert mx.hosts == ["."]
    assert mx.by_pref == {0: ["."]}
    assert mx.site_name == ""
    assert mx.is_null_mx


async def test_nxdomain_raises_a_permanent_dns_error(resolver: Resolver) -> None:
    with pytest.raises(DnsError, match="NXDOMAIN") as caught:
        await resolver.lookup_mx("does-not-exist.example")
    assert caught.value.transient is False
    assert caught.value.name == "does-not-exist.example."


@pytest.mark.parametrize(
    ("literal", "address"),
    [("[192.0.2.7]", "192.0.2.7"), ("[IPv6:2001:DB8::1]", "2001:db8::1"), ("[::1]", "::1")],
)
async def test_domain_literal_needs_no_dns_and_is_its_own_site(
    dns_server: TestDnsServer, resolver: Resolver, literal: str, address: str
) -> None:
    mx = await resolver.lookup_mx(literal)
    assert mx == MailExchanger(
        domain_name=literal,
        hosts=[address],
        site_name=address,
        by_pref={1: [address]},
        is_domain_literal=True,
        is_secure=False,
        is_mx=False,
    )
    assert dns_server.queries == []


async def test_malformed_domain_literal_is_a_permanent_error(resolver: Resolver) -> None:
    with pytest.raises(DnsError, match="invalid domain literal") as caught:
        await resolver.lookup_mx("[not.an.address]")
    assert caught.value.transient is False


async def test_port_suffix_is_carried_into_hosts_and_site_name(resolver: Resolver) -> None:
    mx = await resolver.lookup_mx("yahoo.com:2525")
    assert mx.hosts[0] == "mta5.am0.yahoodns.net.:2525"
    assert mx.site_name == "(mta5|mta6|mta7).am0.yahoodns.net:2525"
    assert mx.host_port(mx.hosts[0]) == ("mta5.am0.yahoodns.net.", 2525)


async def test_policy_table_has_kumomta_fields_and_is_a_copy(resolver: Resolver) -> None:
    mx = await resolver.lookup_mx("comcast.net")
    table = mx.to_policy_table()
    assert table == {
        "domain_name": "comcast.net.",
        "hosts": ["mx1a1.comcast.net.", "mx2c1.comcast.net."],
        "site_name": "(mx1a1|mx2c1).comcast.net",
        "by_pref": {5: ["mx1a1.comcast.net.", "mx2c1.comcast.net."]},
        "is_domain_literal": False,
        "is_secure": False,
        "is_mx": True,
        "mta_sts": "None",
    }
    table["hosts"].clear()
    table["by_pref"][5].clear()
    assert mx.hosts == ["mx1a1.comcast.net.", "mx2c1.comcast.net."]
    assert mx.by_pref[5] == ["mx1a1.comcast.net.", "mx2c1.comcast.net."]


async def test_internationalised_domain_is_queried_as_punycode(
    dns_server: TestDnsServer, resolver: Resolver
) -> None:
    dns_server.set_records("xn--bcher-kva.example", "MX", [(10, "mx.xn--bcher-kva.example")])
    mx = await resolver.lookup_mx("Bücher.example")
    assert mx.domain_name == "xn--bcher-kva.example."
    assert mx.site_name == "mx.xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("Ipv4Only", ["192.0.2.1", "192.0.2.2"]),
        ("Ipv6Only", ["2001:db8::1"]),
        # the second family only when the first has no address (KumoMTA's resolver)
        ("Ipv6ThenIpv4", ["2001:db8::1"]),
        ("Ipv4ThenIpv6", ["192.0.2.1", "192.0.2.2"]),
        ("Ipv4AndIpv6", ["192.0.2.1", "192.0.2.2", "2001:db8::1"]),
    ],
)
def test_ip_lookup_strategy_orders_and_filters_the_addresses_to_try(
    strategy: str, expected: list[str]
) -> None:
    from kumocore.dns.mx import order_addresses

    assert order_addresses(["192.0.2.1", "2001:db8::1", "192.0.2.2"], strategy) == expected
