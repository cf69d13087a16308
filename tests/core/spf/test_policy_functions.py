"""``kumo.spf.check_host`` / ``kumo.spf.check_msg`` as contributed to policies: KumoMTA's
result shape, where the identities come from, named resolvers and refused arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kumocore.dns import Resolver
from kumocore.dns.lists import NamedResolvers
from kumocore.errors import ConfigError
from kumocore.mail.message import Message
from kumocore.spf.policy import make_spf_functions

Zone = Callable[..., None]
META = {"received_from": "192.0.2.5:40000", "hostname": "mx.receiver.example",
        "ehlo_domain": "client.example.org"}


@pytest.fixture
def functions(resolver: Resolver) -> dict[str, Any]:
    return make_spf_functions(NamedResolvers(resolver))


async def test_check_host_for_a_sender_returns_disposition_and_auth_result(
    zone: Zone, functions: dict[str, Any],
) -> None:
    zone("example.com", TXT="v=spf1 ip4:192.0.2.0/24 -all")
    out = await functions["spf.check_host"]("example.com", dict(META), "joe@example.com")
    assert out == {
        "disposition": "pass",
        "result": {
            "method": "spf", "method_version": None, "result": "pass",
            "reason": "matched 'ip4:192.0.2.0/24' directive",
            "props": {"smtp.mailfrom": "joe@example.com", "smtp.helo": "client.example.org"},
        },
    }


async def test_check_host_without_sender_checks_the_helo_name(
    zone: Zone, functions: dict[str, Any],
) -> None:
    zone("helo.example.net", TXT="v=spf1 -all exp=why.example.net")
    zone("why.example.net", TXT="%{h} from %{c} refused by %{r}")
    out = await functions["spf.check_host"]("helo.example.net", dict(META))
    assert out["disposition"] == "fail"
    assert out["result"]["reason"] == "helo.example.net from 192.0.2.5 refused by " \
                                      "mx.receiver.example"
    assert out["result"]["props"] == {"smtp.helo": "helo.example.net"}


async def test_check_msg_uses_the_envelope_sender_and_received_from(
    zone: Zone, functions: dict[str, Any],
) -> None:
    zone("example.com", TXT="v=spf1 ip4:192.0.2.9 ~all")
    msg = Message("joe@example.com", "rcpt@dest.example", b"Subject: x\r\n\r\nbody\r\n",
                  meta=dict(META))
    out = await functions["spf.check_msg"](msg)
    assert out["disposition"] == "softfail"
    assert out["result"]["props"]["smtp.mailfrom"] == "joe@example.com"


async def test_check_msg_with_null_sender_checks_the_helo_identity(
    zone: Zone, functions: dict[str, Any],
) -> None:
    zone("client.example.org", TXT="v=spf1 ip4:192.0.2.5 -all")
    msg = Message("<>", "rcpt@dest.example", b"Subject: x\r\n\r\nbody\r\n", meta=dict(META))
    out = await functions["spf.check_msg"](msg)
    assert out["disposition"] == "pass"
    assert out["result"]["props"] == {"smtp.helo": "client.example.org"}


async def test_a_domain_without_spf_is_none_with_kumomtas_reason(
    functions: dict[str, Any], zone: Zone,
) -> None:
    zone("example.com", A=["192.0.2.1"])
    out = await functions["spf.check_host"]("example.com", dict(META), "joe@example.com")
    assert out["disposition"] == "none"
    assert out["result"]["reason"] == "no SPF records found for example.com"


async def test_ipv6_received_from_is_understood(zone: Zone, functions: dict[str, Any]) -> None:
    zone("example.com", TXT="v=spf1 ip6:2001:db8::/32 -all")
    meta = {"received_from": "[2001:db8::25]:40000"}
    out = await functions["spf.check_host"]("example.com", meta, "a@example.com")
    assert out["disposition"] == "pass"


async def test_missing_received_from_is_refused(functions: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="received_from missing from metadata"):
        await functions["spf.check_host"]("example.com", {}, None)


async def test_an_undefined_resolver_name_is_refused(functions: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="resolver nope is not defined"):
        await functions["spf.check_host"]("example.com", dict(META), None, "nope")


async def test_a_defined_resolver_name_is_used(
    zone: Zone, resolver: Resolver, dns_server: Any,
) -> None:
    zone("example.com", TXT="v=spf1 +all")
    resolvers = NamedResolvers(Resolver(["127.0.0.1:9"], timeout=0.2))  # default: no answer
    resolvers.define("spf", {"Hickory": {"name_servers": [dns_server.address]}})
    functions = make_spf_functions(resolvers)
    out = await functions["spf.check_host"]("example.com", dict(META), None, "spf")
    assert out["disposition"] == "pass"
    default = await functions["spf.check_host"]("example.com", dict(META), None)
    assert default["disposition"] == "temperror"
