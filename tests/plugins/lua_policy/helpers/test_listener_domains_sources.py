"""policy-extras.listener_domains and policy-extras.sources from data files: lookups as
documented, and bad files refused at load with file, key and what was expected."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kumocore_lua_policy import LuaPolicyError

from tests.plugins.lua_policy.helpers.conftest import Load

LISTENER_POLICY = """
local kumo = require 'kumo'
local listener_domains = require 'policy-extras.listener_domains'
kumo.on('get_listener_domain', listener_domains:setup { 'DIR/ld.toml', 'DIR/more.json' })
"""

LD_TOML = """
["example.com"]
relay_to = true
["*.example.com"]
log_oob = true
relay_to = true
["www.example.com"]
relay_to = false
["auth.example.com"]
relay_from_authz = ["alice"]
[listener."127.0.0.1:2525"."*.example.com"]
log_oob = false
"""


async def test_listener_domains_exact_wildcard_listener_and_later_file(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    files(ld__toml=LD_TOML, more__json='{"example.com": {"log_arf": true}}')
    _, policy = await load_policy(LISTENER_POLICY)

    async def lookup(domain: str, listener: str = "0.0.0.0:25") -> object:
        return await policy.call_event("get_listener_domain", domain, listener, {})

    exact = await lookup("example.com")
    assert exact.relay_to and exact.should_log_arf  # the JSON file merged over the TOML
    sub = await lookup("a.b.example.com")
    assert sub.relay_to and sub.should_log_oob
    assert not (await lookup("www.example.com")).relay_to
    per_listener = await lookup("a.example.com", "127.0.0.1:2525")
    assert not per_listener.should_log_oob and not per_listener.relay_to
    assert await lookup("example.org") is None


async def test_relay_from_authz_lets_the_authenticated_peer_relay(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    files(ld__toml=LD_TOML, more__json="{}")
    _, policy = await load_policy(LISTENER_POLICY)
    meta = {"authz_id": "alice", "received_from": "127.0.0.5:40000"}
    allowed = await policy.call_event("get_listener_domain", "auth.example.com", "x:25", meta)
    assert "127.0.0.5" in str(allowed.relay_from)
    other = {"authz_id": "mallory", "received_from": "127.0.0.5:40000"}
    refused = await policy.call_event("get_listener_domain", "auth.example.com", "x:25", other)
    assert "127.0.0.5" not in str(refused.relay_from)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('["x.com"]\nrelay_too = true\n', r'"x.com": unknown key \'relay_too\''),
        ('["x.com"]\nlog_arf = "yes"\n', r"'log_arf' in .*: invalid value: string \"yes\""),
        ('["x.com"]\nrelay_from = ["not-an-ip"]\n', r"invalid value for 'relay_from\[1\]'"),
        ('["x.com"]\nrelay_from_authz = "alice"\n', r'"x.com".relay_from_authz: expected a list'),
        ('["x.com"\n', r"not valid TOML"),
    ],
)
async def test_a_bad_listener_domains_file_is_refused_with_file_and_key(
    load_policy: Load, files: Callable[..., Path], toml: str, expected: str
) -> None:
    directory = files(ld__toml=toml, more__json="{}")
    with pytest.raises(LuaPolicyError, match=expected) as info:
        await load_policy(LISTENER_POLICY)
    assert f"{directory}/ld.toml" in str(info.value)
    assert "policy.lua:4" in str(info.value)


SOURCES_POLICY = """
local kumo = require 'kumo'
local sources = require 'policy-extras.sources'
sources:setup { 'DIR/sources.toml', 'DIR/more.toml' }
"""

SOURCES_TOML = """
[source."ip-1"]
source_address = "127.0.10.1"
ehlo_domain = "one.example"
[source."ip-2"]
source_address = "127.0.10.2"
[pool."p"]
[pool."p"."ip-1"]
[pool."p"."ip-2"]
weight = 3
"""


async def test_sources_and_pools_come_from_the_files_merged_in_order(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    files(
        sources__toml=SOURCES_TOML,
        more__toml='[source."ip-2"]\nehlo_domain = "two.example"\n[pool."p"."ip-1"]\nweight = 0\n',
    )
    _, policy = await load_policy(SOURCES_POLICY)
    one = await policy.call_event("get_egress_source", "ip-1")
    assert (one.source_address, one.ehlo_domain) == ("127.0.10.1", "one.example")
    two = await policy.call_event("get_egress_source", "ip-2")
    assert (two.source_address, two.ehlo_domain) == ("127.0.10.2", "two.example")
    pool = await policy.call_event("get_egress_pool", "p")
    assert [(e.name, e.weight) for e in pool.entries] == [("ip-1", 0), ("ip-2", 3)]
    assert await policy.call_event("get_egress_pool", "nope") is None


@pytest.mark.parametrize(
    ("more", "expected"),
    [
        ('[source."ip-3"]\nsource_adress = "127.0.10.3"\n', r'source."ip-3": unknown key'),
        ('[source."ip-3"]\nsource_address = 5\n', r"invalid value for 'source_address'"),
        ('[pool."q"."ip-9"]\n', r'pool.q."ip-9": pool member \'ip-9\' is not a source'),
        ('[pool."q"."ip-1"]\nweight = "heavy"\n', r'pool.q."ip-1".weight: expected a whole'),
        ('[pool."q"."ip-1"]\nwieght = 2\n', r'pool.q."ip-1".wieght: unknown key'),
        ('[sauce."x"]\n', r"sauce: unknown key; expected one of pool, source"),
    ],
)
async def test_a_bad_sources_file_is_refused_with_file_and_key(
    load_policy: Load, files: Callable[..., Path], more: str, expected: str
) -> None:
    directory = files(sources__toml=SOURCES_TOML, more__toml=more)
    with pytest.raises(LuaPolicyError, match=expected) as info:
        await load_policy(SOURCES_POLICY)
    assert str(directory) in str(info.value)


async def test_a_missing_data_file_is_named(load_policy: Load) -> None:
    with pytest.raises(LuaPolicyError, match=r"sources.toml: cannot read the file: No such file"):
        await load_policy(SOURCES_POLICY)


async def test_setting_a_helper_up_twice_is_an_error(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    files(sources__toml=SOURCES_TOML, more__toml="")
    with pytest.raises(LuaPolicyError, match="sources module has already been configured"):
        await load_policy(SOURCES_POLICY + "sources:setup { 'DIR/sources.toml' }\n")


async def test_a_hostile_deeply_nested_json_file_is_refused_not_a_recursion_error(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    directory = files(ld__toml="", more__json="[" * 100_000 + "]" * 100_000)
    with pytest.raises(LuaPolicyError, match=r"more.json: nested too deeply to read"):
        await load_policy(LISTENER_POLICY)
    assert directory.is_dir()
