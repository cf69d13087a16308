"""``kumo.dns.lookup_mx`` from a Lua policy: every field of KumoMTA's table as Lua sees it,
``is_secure`` from a ``Test`` resolver zone marked secure, and an MTA-STS policy served
over HTTPS on loopback filtering the MX hosts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kumocore.delivery.mta_sts import MtaSts
from kumocore.testing.dns import TestDnsServer
from tests.support.mta_sts_server import POLICY_HOST, policy_server

from .support import Recorder, make_runtime, write

ZONES = {
    "plain.example": {"MX": [(20, "mx2.plain.example"), (10, "mx1.plain.example")]},
    "sts.example": {
        "MX": [(10, "mx1.sts.example"), (10, "mx2.sts.example"), (20, "backup.relay.example")]
    },
}

POLICY = """\
local kumo = require 'kumo'
kumo.dns.configure_resolver { name_servers = { kumo.test.value() } }
kumo.dns.define_resolver('zones', {
  Test = { zones = { { zone = '$ORIGIN z.example.\\n@ 600 IN MX 5 mx.z.example.\\n',
                       secure = true } } },
})
local plain = kumo.dns.lookup_mx 'plain.example'
kumo.test.mark(plain)
kumo.test.mark { plain.by_pref[10][1], plain.by_pref[20][1], plain.mta_sts, plain.expires }
local sts = kumo.dns.lookup_mx 'sts.example'
kumo.test.mark { sts.hosts, sts.site_name, sts.by_pref[20] == nil, sts.mta_sts }
local zoned = kumo.dns.lookup_mx('z.example', 'zones')
kumo.test.mark { zoned.hosts, zoned.is_secure, zoned.is_mx, zoned.mta_sts }
"""


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    with TestDnsServer(ZONES) as server:
        yield server


async def test_lua_sees_every_field_secure_zones_and_the_mta_sts_policy_applied(
    tmp_path: Path,
    dns: TestDnsServer,
) -> None:
    recorder = Recorder()
    recorder.value = dns.address
    runtime = make_runtime(recorder)
    async with policy_server("sts.example") as policies:
        # As the queue manager does for the default resolver (here: the loopback server).
        MtaSts(runtime.resolver, https_port=policies.port, ssl_context=policies.client_context())
        policies.publish(dns, "sts.example", "enforce", "*.sts.example")
        await runtime.load_policy(write(tmp_path, "policy.lua", POLICY))
    assert recorder.marks == [
        {
            "domain_name": "plain.example.",
            "hosts": ["mx1.plain.example.", "mx2.plain.example."],
            "site_name": "(mx1|mx2).plain.example",
            "by_pref": {10: ["mx1.plain.example."], 20: ["mx2.plain.example."]},
            "is_domain_literal": False,
            "is_secure": False,
            "is_mx": True,
            "mta_sts": "None",
        },
        ["mx1.plain.example.", "mx2.plain.example.", "None"],  # integer keys; no expires
        [["mx1.sts.example.", "mx2.sts.example."], "(mx1|mx2).sts.example", True, "Enforce"],
        [["mx.z.example."], True, True, "None"],
    ]
    assert len(policies.requests) == 1


ZONED_POLICY = """\
local kumo = require 'kumo'
kumo.dns.configure_resolver { Test = { zones = { [[
$ORIGIN nullmx.example.
@        600 IN MX 0 .
_mta-sts 600 IN TXT "v=STSv1; id=1;"
mta-sts  600 IN A   POLICY_HOST
]], [[
$ORIGIN testing.example.
@        600 IN MX 0 .
_mta-sts 600 IN TXT "v=STSv1; id=1;"
mta-sts  600 IN A   POLICY_HOST
]] } } }
local testing = kumo.dns.lookup_mx 'testing.example'
kumo.test.mark { testing.hosts, testing.site_name, testing.mta_sts }
local ok, err = pcall(kumo.dns.lookup_mx, 'nullmx.example')
kumo.test.mark { ok, tostring(err) }
local literal = kumo.dns.lookup_mx '[10.0.0.1]:2525'
kumo.test.mark { literal.hosts, literal.site_name, literal.is_domain_literal }
"""


async def test_lua_sees_test_zones_null_mx_policies_and_literal_ports_as_kumomta(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    runtime = make_runtime(recorder)
    async with policy_server("nullmx.example", "testing.example") as policies:
        MtaSts(runtime.resolver, https_port=policies.port, ssl_context=policies.client_context())
        for domain, mode in (("nullmx.example", "enforce"), ("testing.example", "testing")):
            policies.bodies[domain] = (
                f"version: STSv1\r\nmode: {mode}\r\nmx: *.example\r\nmax_age: 86400\r\n"
            ).encode()
        policy = ZONED_POLICY.replace("POLICY_HOST", POLICY_HOST)
        await runtime.load_policy(write(tmp_path, "policy.lua", policy))
    assert recorder.marks[0] == [["."], "", "Testing"]
    ok, error = recorder.marks[1]
    assert ok is False
    assert (
        'MTA-STS enforce policy for nullmx.example permits none of its MX hosts ["."]; '
        'allowed mx patterns: ["*.example"]. The destination is undeliverable until its '
        "MTA-STS policy is corrected."
    ) in error
    assert recorder.marks[2] == [["10.0.0.1:2525"], "10.0.0.1:2525", True]
    assert len(policies.requests) == 2  # the policy hosts were found in the zones
