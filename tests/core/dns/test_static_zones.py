"""KumoMTA's ``Test`` resolver kind: kumo.dns.define_resolver('n', { Test = { zones = ... } })
answers lookup_mx / lookup_addr / lookup_txt / lookup_ptr / rbl_lookup from zone texts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kumocore import ConfigError
from kumocore.dns import DnsError, Resolver, make_dns_functions
from kumocore.dns.lists import NamedResolvers, make_dns_list_functions
from kumocore.spf.policy import make_spf_functions
from kumocore.testing.dns import TestDnsServer

ZONE = """\
$ORIGIN example.com.
@       600  IN MX 2 two.example.com.
                MX 1 one.example.com.
@            TXT "v=spf1 -all"
one      30  A    10.0.0.1
one          AAAA 2001:db8::1
www          CNAME one
loop1        CNAME loop2
loop2        CNAME loop1
"""
SECURE_ZONE = """\
$ORIGIN dane.example.
@ 3600 IN MX 10 mx.dane.example.
mx 3600 IN A 127.0.0.1
alias 3600 IN CNAME one.example.com.
"""
RBL_ZONE = """\
$ORIGIN rbl.domain.
1.0.0.10 30 IN A   127.0.0.2
1.0.0.10 300   TXT "Blocked for a very good reason!"
"""
PTR_ZONE = """\
$ORIGIN 0.0.127.in-addr.arpa.
1 30 IN PTR localhost.
"""


@pytest.fixture
def resolvers() -> NamedResolvers:
    # The default resolver points nowhere: any answer below comes from the zones.
    named = NamedResolvers(Resolver(["127.0.0.1:9"], timeout=0.2))
    named.define(
        "zones",
        {
            "Test": {
                "zones": [ZONE, {"zone": SECURE_ZONE, "secure": True}, RBL_ZONE, PTR_ZONE],
                "servfail": ["broken.example.com", "2.0.0.127.in-addr.arpa"],
            }
        },
    )
    return named


@pytest.fixture
def fns(resolvers: NamedResolvers) -> dict[str, Any]:
    return {**make_dns_functions(resolvers), **make_dns_list_functions(resolvers)}


async def test_a_test_zone_answers_mx_as_the_mailexchanger_table(fns: dict[str, Any]) -> None:
    assert await fns["dns.lookup_mx"]("example.com", "zones") == {
        "domain_name": "example.com.",
        "hosts": ["one.example.com.", "two.example.com."],
        "site_name": "(one|two).example.com",
        "by_pref": {1: ["one.example.com."], 2: ["two.example.com."]},
        "is_domain_literal": False,
        "is_secure": False,
        "is_mx": True,
        "mta_sts": "None",
    }
    secure = await fns["dns.lookup_mx"]("dane.example", "zones")
    assert (secure["hosts"], secure["is_secure"]) == (["mx.dane.example."], True)


async def test_a_test_zone_answers_addr_txt_ptr_and_follows_cnames(fns: dict[str, Any]) -> None:
    assert await fns["dns.lookup_addr"]("one.example.com", "zones") == ["10.0.0.1", "2001:db8::1"]
    assert await fns["dns.lookup_addr"]("www.example.com", "zones", "Ipv4Only") == ["10.0.0.1"]
    assert await fns["dns.lookup_txt"]("example.com", "zones") == ["v=spf1 -all"]
    assert await fns["dns.lookup_ptr"]("127.0.0.1", "zones") == ["localhost."]


async def test_names_outside_every_zone_do_not_exist_and_names_inside_exist(
    fns: dict[str, Any],
    resolvers: NamedResolvers,
) -> None:
    with pytest.raises(DnsError, match="NXDOMAIN"):
        await fns["dns.lookup_txt"]("example.org", "zones")
    with pytest.raises(DnsError, match="NXDOMAIN"):
        await fns["dns.lookup_mx"]("example.org", "zones")
    # Inside a zone a name without the asked records exists (KumoMTA's test resolver).
    assert await fns["dns.lookup_txt"]("nothing.example.com", "zones") == []
    assert await fns["dns.lookup_addr"]("nothing.example.com", "zones") == []
    implicit = await fns["dns.lookup_mx"]("one.example.com", "zones")
    assert (implicit["hosts"], implicit["is_mx"]) == (["one.example.com."], False)


async def test_a_cname_loop_in_a_zone_ends_without_an_answer(fns: dict[str, Any]) -> None:
    assert await fns["dns.lookup_addr"]("loop1.example.com", "zones") == []


async def test_a_secure_alias_to_an_insecure_zone_is_not_secure(
    resolvers: NamedResolvers,
) -> None:
    answer = await resolvers.get("zones").lookup_dnssec("alias.dane.example", "A")
    assert (answer.records, answer.secure) == (("10.0.0.1",), False)
    direct = await resolvers.get("zones").lookup_dnssec("mx.dane.example", "A")
    assert (direct.records, direct.secure) == (("127.0.0.1",), True)


async def test_a_servfail_name_fails_transiently(fns: dict[str, Any]) -> None:
    with pytest.raises(DnsError, match="SERVFAIL") as failure:
        await fns["dns.lookup_txt"]("broken.example.com", "zones")
    assert failure.value.transient


async def test_an_address_without_a_reverse_entry_has_no_ptr_names_and_a_failure_raises(
    fns: dict[str, Any],
) -> None:
    # KumoMTA's resolvers answer NXDOMAIN with no names (policy-extras.mail_auth's iprev
    # then says "permerror ... has no PTR"); only a failed lookup is an error (temperror).
    assert await fns["dns.lookup_ptr"]("30.0.0.1", "zones") == []
    assert await fns["dns.lookup_ptr"]("127.0.0.9", "zones") == []
    with pytest.raises(DnsError) as failure:
        await fns["dns.lookup_ptr"]("127.0.0.2", "zones")
    assert failure.value.transient


async def test_rbl_lookup_through_a_test_zone_as_kumomtas_example(fns: dict[str, Any]) -> None:
    assert await fns["dns.rbl_lookup"]("10.0.0.1", "rbl.domain", "zones") == (
        "127.0.0.2",
        "Blocked for a very good reason!",
    )
    assert await fns["dns.rbl_lookup"]("10.0.0.2", "rbl.domain", "zones") == (None, None)


async def test_the_bare_list_form_of_test_zones_is_accepted(resolvers: NamedResolvers) -> None:
    resolvers.define("bare", {"Test": [RBL_ZONE]})
    assert await resolvers.get("bare").lookup_txt("1.0.0.10.rbl.domain") == [
        "Blocked for a very good reason!"
    ]


async def test_test_zones_ignore_the_hosts_file(resolvers: NamedResolvers) -> None:
    # 'localhost' is in every hosts file; KumoMTA's test resolver answers from zones only.
    with pytest.raises(DnsError, match="NXDOMAIN"):
        await resolvers.get("zones").lookup_addr("localhost")


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"Test": {"zones": ["one 30 A 10.0.0.1\n"]}}, r"Test zone 1: .*origin"),
        ({"Test": {"zones": ["$ORIGIN x.\n@ 30 A not-an-ip\n"]}}, r"Test zone 1:"),
        ({"Test": {"zones": [{"zone": ZONE, "secure": "yes"}]}}, r"Test zone 1: expected"),
        (
            {"Test": {"zones": [{"zone": ZONE, "signed": True}]}},
            r"Test zone 1: unknown option 'signed'",
        ),
        ({"Test": {"zones": [], "extra": 1}}, r"Test: unknown option 'extra'"),
        ({"Test": {"servfail": ["x.example"]}}, r"Test: zones is required"),
        ({"Test": {"zones": [], "servfail": [5]}}, r"Test\.servfail: expected a name"),
    ],
)
def test_bad_test_zone_configurations_are_refused_at_definition(
    resolvers: NamedResolvers,
    config: dict[str, Any],
    error: str,
) -> None:
    with pytest.raises(ConfigError, match=r"define_resolver\('bad'\): " + error):
        resolvers.define("bad", config)


DEFAULT_ZONE = """\
$ORIGIN zoned.example.
@     600 IN MX 10 mx.zoned.example.
@         IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
mx        IN A   127.0.0.1
"""


@pytest.fixture
def wire() -> Iterator[TestDnsServer]:
    """A name server that also knows zoned.example, differently: an answer from it
    would show that a lookup went to the wire instead of the zones."""
    with TestDnsServer({"zoned.example": {"MX": [(5, "wire.zoned.example")]}}) as server:
        yield server


async def test_configure_resolver_with_test_zones_makes_the_default_resolver_answer_from_them(
    wire: TestDnsServer,
) -> None:
    named = NamedResolvers(Resolver([wire.address], timeout=0.5))
    fns = {**make_dns_functions(named), **make_spf_functions(named)}
    fns["dns.configure_resolver"](
        Test={"zones": [{"zone": DEFAULT_ZONE, "secure": True}], "servfail": ["down.example"]}
    )
    mx = await fns["dns.lookup_mx"]("zoned.example")  # no resolver name: the default
    assert (mx["hosts"], mx["site_name"], mx["is_secure"]) == (
        ["mx.zoned.example."],
        "mx.zoned.example",
        True,
    )
    assert await fns["dns.lookup_addr"]("mx.zoned.example") == ["127.0.0.1"]
    assert await fns["dns.lookup_txt"]("zoned.example") == ["v=spf1 ip4:192.0.2.0/24 -all"]
    with pytest.raises(DnsError, match="NXDOMAIN"):
        await fns["dns.lookup_addr"]("localhost")  # no hosts file, as KumoMTA's
    with pytest.raises(DnsError, match="SERVFAIL"):
        await fns["dns.lookup_txt"]("down.example")
    spf = await fns["spf.check_host"](
        "zoned.example", {"received_from": "192.0.2.5:40000"}, "joe@zoned.example"
    )
    assert spf["disposition"] == "pass"
    # What routing and delivery ask (the same resolver object), and DANE may believe it.
    resolver = named.default
    assert (await resolver.lookup_mx("zoned.example")).hosts == ["mx.zoned.example."]
    assert await resolver.resolve_ips("mx.zoned.example") == ["127.0.0.1"]
    assert resolver.validate
    assert wire.queries == []


async def test_configuring_name_servers_after_test_zones_goes_back_to_the_wire(
    wire: TestDnsServer,
) -> None:
    named = NamedResolvers(Resolver([wire.address], timeout=0.5))
    fns = make_dns_functions(named)
    fns["dns.configure_resolver"](Test=[DEFAULT_ZONE])  # the bare list form
    assert (await fns["dns.lookup_mx"]("zoned.example"))["hosts"] == ["mx.zoned.example."]
    fns["dns.configure_resolver"](name_servers=[wire.address])
    assert (await fns["dns.lookup_mx"]("zoned.example"))["hosts"] == ["wire.zoned.example."]
    assert named.default.validate is False and named.default.use_hosts_file


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"Test": {"zones": ["one 30 A 10.0.0.1\n"]}}, r"Test zone 1: .*origin"),
        ({"Test": {"zones": [], "extra": 1}}, r"Test: unknown option 'extra'"),
        ({"Test": {"zones": []}, "name_servers": ["127.0.0.1:53"]}, r"unknown option 'Test'"),
        ({"Unbound": {"name_servers": ["127.0.0.1:53"]}}, r"KumoMTA's 'Unbound' resolver is not"),
    ],
)
def test_bad_test_zones_for_the_default_resolver_are_refused_and_change_nothing(
    wire: TestDnsServer,
    config: dict[str, Any],
    error: str,
) -> None:
    named = NamedResolvers(Resolver([wire.address], timeout=0.5))
    with pytest.raises(ConfigError, match=r"kumo\.dns\.configure_resolver: " + error):
        make_dns_functions(named)["dns.configure_resolver"](**config)
    assert named.default._static is None


async def test_configure_test_resolver_takes_the_bare_zone_list_or_the_test_table(
    wire: TestDnsServer,
) -> None:
    # KumoMTA's own integration-test policies call this shorthand in both forms.
    named = NamedResolvers(Resolver([wire.address], timeout=0.5))
    fns = make_dns_functions(named)
    fns["dns.configure_test_resolver"]([DEFAULT_ZONE])
    assert (await fns["dns.lookup_mx"]("zoned.example"))["hosts"] == ["mx.zoned.example."]
    fns["dns.configure_test_resolver"]({"zones": [DEFAULT_ZONE], "servfail": ["zoned.example"]})
    with pytest.raises(DnsError, match="SERVFAIL"):
        await fns["dns.lookup_txt"]("zoned.example")
    with pytest.raises(ConfigError, match=r"kumo\.dns\.configure_test_resolver: Test: unknown"):
        fns["dns.configure_test_resolver"]({"zones": [], "bogus": 1})
    assert wire.queries == []


async def test_configure_test_mta_sts_answers_policies_without_dns_or_https(
    wire: TestDnsServer,
) -> None:
    from kumocore.delivery.mta_sts import MtaSts

    named = NamedResolvers(Resolver([wire.address], timeout=0.5))
    sts = MtaSts(named.default)
    fns = make_dns_functions(named)
    fns["dns.configure_test_mta_sts"]({
        "Broken.Example.com.": "version: STSv1\nmode: enforce\nmx: allowed.example.net\n"
                               "max_age: 86400\n",
    })
    policy = await sts.policy_for("broken.example.com")
    assert policy is not None and (policy.mode, policy.mx) == ("enforce", ("allowed.example.net",))
    assert await sts.policy_for("other.example.com") is None  # not listed: no policy
    # A define_resolver resolver's policies follow the default's test policies too.
    assert await sts.following(Resolver([wire.address])).policy_for("broken.example.com")
    assert sts.fetches == 0 and wire.queries == []
    with pytest.raises(ConfigError, match=r"configure_test_mta_sts: bad\.example: "):
        fns["dns.configure_test_mta_sts"]({"bad.example": "version: STSv1\nmode: enforce\n"})
