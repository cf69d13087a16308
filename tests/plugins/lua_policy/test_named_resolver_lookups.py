"""kumo.dns.lookup_mx / lookup_addr / lookup_txt from a Lua policy, with the resolver name
of kumo.dns.define_resolver: a Hickory resolver on a second loopback DNS server, a Test
resolver from zone text, and KumoMTA's error for a name never defined."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.common.dns_server import TestDnsServer

from .support import Recorder, load

DEFAULT_ZONES = {
    "example.com": {
        "MX": [(10, "mx.default.test")],
        "A": ["192.0.2.1"],
        "AAAA": ["2001:db8::1"],
        "TXT": ["default"],
    },
}
ALTERNATE_ZONES = {
    "example.com": {
        "MX": [(5, "mx.alt.test")],
        "A": ["198.51.100.7"],
        "AAAA": ["2001:db8::7"],
        "TXT": ["alternate"],
    },
}


@pytest.fixture
def servers() -> Iterator[tuple[TestDnsServer, TestDnsServer]]:
    with TestDnsServer(DEFAULT_ZONES) as default, TestDnsServer(ALTERNATE_ZONES) as alternate:
        yield default, alternate


async def test_lua_lookups_use_the_named_resolver_and_the_default_without_a_name(
    tmp_path: Path,
    servers: tuple[TestDnsServer, TestDnsServer],
) -> None:
    default, alternate = servers
    recorder = Recorder()
    recorder.value = {"default": default.address, "alternate": alternate.address}
    await load(
        tmp_path,
        """\
        local kumo = require 'kumo'
        local servers = kumo.test.value()
        kumo.dns.configure_resolver { name_servers = { servers.default } }
        kumo.dns.define_resolver('alt', { Hickory = { name_servers = { servers.alternate } } })
        for _, choice in ipairs { 'alt', false } do
          local name = choice or nil  -- nil: the default resolver, as KumoMTA
          local mx = kumo.dns.lookup_mx('example.com', name)
          kumo.test.mark { mx.hosts, mx.site_name }
          kumo.test.mark(kumo.dns.lookup_addr('example.com', name))
          kumo.test.mark(kumo.dns.lookup_addr('example.com', name, 'Ipv6Only'))
          kumo.test.mark(kumo.dns.lookup_txt('example.com', name))
        end
    """,
        recorder=recorder,
    )
    assert recorder.marks == [
        [["mx.alt.test."], "mx.alt.test"],
        ["198.51.100.7", "2001:db8::7"],
        ["2001:db8::7"],
        ["alternate"],
        [["mx.default.test."], "mx.default.test"],
        ["192.0.2.1", "2001:db8::1"],
        ["2001:db8::1"],
        ["default"],
    ]
    assert default.query_count("example.com", "MX") == 1
    assert alternate.query_count("example.com", "MX") == 1


async def test_lua_lookups_with_an_undefined_resolver_name_raise_kumomtas_error(
    tmp_path: Path,
    servers: tuple[TestDnsServer, TestDnsServer],
) -> None:
    default, _ = servers
    recorder = Recorder()
    recorder.value = default.address
    await load(
        tmp_path,
        """\
        local kumo = require 'kumo'
        kumo.dns.configure_resolver { name_servers = { kumo.test.value() } }
        for _, lookup in ipairs { kumo.dns.lookup_mx, kumo.dns.lookup_addr,
                                  kumo.dns.lookup_txt } do
          local ok, err = pcall(lookup, 'example.com', 'nope')
          kumo.test.mark { ok, tostring(err):match('resolver nope is not defined') ~= nil }
        end
    """,
        recorder=recorder,
    )
    assert recorder.marks == [[False, True]] * 3
    assert default.queries == []


async def test_lua_lookups_through_a_test_zone_resolver_as_kumomtas_example(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    await load(
        tmp_path,
        """\
        local kumo = require 'kumo'
        kumo.dns.define_resolver('my_resolver', {
          Test = {
            zones = {
              [[
        $ORIGIN example.com.
        @       600  IN MX 2 two.example.com.
                        MX 1 one.example.com.
        @            TXT "hello from a zone"
        one          A    10.0.0.1
        one          AAAA ::1
        ]],
            },
          },
        })
        local mx = kumo.dns.lookup_mx('example.com', 'my_resolver')
        kumo.test.mark { mx.hosts, mx.site_name, mx.by_pref[1], mx.is_mx }
        kumo.test.mark(kumo.dns.lookup_addr('one.example.com', 'my_resolver'))
        kumo.test.mark(kumo.dns.lookup_txt('example.com', 'my_resolver'))
        local ok, err = pcall(kumo.dns.lookup_txt, 'example.net', 'my_resolver')
        kumo.test.mark { ok, tostring(err):match('NXDOMAIN') ~= nil }
    """,
        recorder=recorder,
    )
    assert recorder.marks == [
        [
            ["one.example.com.", "two.example.com."],
            "(one|two).example.com",
            ["one.example.com."],
            True,
        ],
        ["10.0.0.1", "::1"],
        ["hello from a zone"],
        [False, True],
    ]
