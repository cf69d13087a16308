"""The DNSSEC status DANE relies on: the AD bit of a name server, believed only when the
resolver is marked as validating (``options.validate``), per answer and cached with it."""

from __future__ import annotations

from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore import ConfigError
from kumocore.dns import Resolver, make_dns_functions

ZONES: dict[str, dict[str, Any]] = {
    "signed.example": {"MX": [(10, "mx.signed.example")], "SECURE": True},
    "mx.signed.example": {"A": ["127.0.0.1"], "SECURE": True},
    "_25._tcp.mx.signed.example": {"TLSA": [(3, 1, 1, "ab" * 32)], "SECURE": True},
    "alias.signed.example": {"CNAME": ["host.unsigned.example"], "SECURE": True},
    "host.unsigned.example": {"A": ["127.0.0.2"]},
}


@pytest.fixture
def signed() -> Any:
    with TestDnsServer(ZONES) as server:
        yield server


async def test_the_ad_bit_is_believed_only_from_a_resolver_marked_validating(
    signed: TestDnsServer,
) -> None:
    resolver = Resolver([signed.address], timeout=0.5)
    plain = await resolver.lookup_dnssec("_25._tcp.mx.signed.example", "TLSA")
    assert plain.records == ((3, 1, 1, b"\xab" * 32),) and plain.secure is False
    assert (await resolver.lookup_mx("signed.example")).is_secure is False
    resolver.configure([signed.address], validate=True)
    validated = await resolver.lookup_dnssec("_25._tcp.mx.signed.example", "TLSA")
    assert validated.secure is True
    assert (await resolver.lookup_mx("signed.example")).is_secure is True


async def test_a_cname_chain_is_secure_only_when_every_name_along_it_is(
    signed: TestDnsServer,
) -> None:
    resolver = Resolver([signed.address], timeout=0.5)
    resolver.configure([signed.address], validate=True)
    through = await resolver.lookup_dnssec("alias.signed.example", "A")
    assert through.records == ("127.0.0.2",) and through.secure is False
    alias = await resolver.lookup_dnssec("alias.signed.example", "CNAME")
    assert alias.records == ("host.unsigned.example.",) and alias.secure is True


async def test_a_secure_name_without_the_type_is_secure_nodata(signed: TestDnsServer) -> None:
    resolver = Resolver([signed.address], timeout=0.5)
    resolver.configure([signed.address], validate=True)
    answer = await resolver.lookup_dnssec("mx.signed.example", "TLSA")
    assert (answer.status, answer.secure) == ("nodata", True)


@pytest.mark.parametrize("form", ["flat", "hickory"])
def test_configure_resolver_options_validate_marks_the_resolver(form: str) -> None:
    resolver = Resolver(["127.0.0.1:53"])
    configure = make_dns_functions(resolver)["dns.configure_resolver"]
    options = {"name_servers": ["127.0.0.1:5353"], "options": {"validate": True}}
    configure(**(options if form == "flat" else {"Hickory": options}))
    assert resolver.validate is True
    configure(name_servers=["127.0.0.1:5353"])
    assert resolver.validate is False


@pytest.mark.parametrize(("options", "message"), [
    ({"validate": "yes"}, "options.validate must be true or false"),
    ({"trust_anchor_file": "/x"}, "options.trust_anchor_file is not supported"),
    ("validate", "options must be a table"),
])
def test_configure_resolver_refuses_resolver_options_it_cannot_honour(
    options: Any, message: str,
) -> None:
    configure = make_dns_functions(Resolver(["127.0.0.1:53"]))["dns.configure_resolver"]
    with pytest.raises(ConfigError, match=message):
        configure(name_servers=["127.0.0.1:53"], options=options)
