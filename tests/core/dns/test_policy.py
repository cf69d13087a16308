"""The kumo.dns.* policy functions as a policy calls them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore import ConfigError, takes_table
from kumocore.dns import DnsError, Resolver, make_dns_functions


@pytest.fixture
def fns(resolver: Resolver) -> dict[str, Any]:
    return make_dns_functions(resolver)


def test_functions_are_registered_under_kumomta_names_with_calling_styles(
    fns: dict[str, Any],
) -> None:
    assert sorted(fns) == [
        "dns.configure_resolver",
        "dns.configure_test_mta_sts",
        "dns.configure_test_resolver",
        "dns.load_resolv_conf",
        "dns.lookup_addr",
        "dns.lookup_mx",
        "dns.lookup_txt",
        "dns.set_mta_sts_enabled",
    ]
    assert takes_table(fns["dns.configure_resolver"])
    assert not any(takes_table(fns[name]) for name in fns if name != "dns.configure_resolver")


async def test_lookup_mx_returns_a_plain_json_able_table(fns: dict[str, Any]) -> None:
    table = await fns["dns.lookup_mx"]("gmail.com")
    assert table["site_name"] == "(alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com"
    assert table["by_pref"][5] == ["gmail-smtp-in.l.google.com."]
    assert json.loads(json.dumps(table))["hosts"] == table["hosts"]


async def test_lookup_mx_of_missing_domain_raises_to_the_policy(fns: dict[str, Any]) -> None:
    with pytest.raises(DnsError, match="NXDOMAIN"):
        await fns["dns.lookup_mx"]("missing.example")


async def test_lookup_addr_and_txt_return_lists_of_strings(
    dns_server: TestDnsServer, fns: dict[str, Any]
) -> None:
    dns_server.set_records("examplecorp.com", "TXT", ["v=spf1 ip4:192.0.2.0/24 -all"])
    assert await fns["dns.lookup_addr"]("mx.examplecorp.com") == ["127.0.0.1"]
    assert await fns["dns.lookup_txt"]("examplecorp.com") == ["v=spf1 ip4:192.0.2.0/24 -all"]


async def test_an_undefined_resolver_name_is_refused_with_kumomtas_error(
    fns: dict[str, Any],
) -> None:
    with pytest.raises(ConfigError, match="resolver rbl is not defined"):
        await fns["dns.lookup_txt"]("examplecorp.com", "rbl")


@pytest.mark.parametrize(
    "name_servers",
    [
        lambda addr: [addr],
        lambda addr: {1: addr},  # a Lua array table converted key by key
        lambda addr: [{"socket_addr": addr}],  # KumoMTA's table form
    ],
)
async def test_configure_resolver_points_lookups_at_the_given_server(
    fns: dict[str, Any], name_servers: Any
) -> None:
    with TestDnsServer({"retarget.example": {"MX": [(1, "mx.retarget.example")]}}) as other:
        fns["dns.configure_resolver"](name_servers=name_servers(other.address), timeout=0.5)
        table = await fns["dns.lookup_mx"]("retarget.example")
    assert table["site_name"] == "mx.retarget.example"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"name_servers": ["127.0.0.1"], "nameservers": []}, "nameservers"),
        ({"timeout": 1}, "name_servers"),
        ({"name_servers": "127.0.0.1"}, "name_servers"),
        ({"name_servers": ["localhost:53"]}, "name_servers"),
        ({"name_servers": [{"socket_addr": "127.0.0.1:53", "protocol": "Tcp"}]}, "protocol"),
        ({"name_servers": ["127.0.0.1"], "timeout": "5s"}, "timeout"),
        ({"name_servers": ["127.0.0.1"], "timeout": -1}, "timeout"),
    ],
)
def test_configure_resolver_mistakes_raise_config_error_naming_the_key(
    fns: dict[str, Any], options: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError, match=key):
        fns["dns.configure_resolver"](**options)
