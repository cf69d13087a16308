"""KumoMTA's ``suspend_when_unplumbed`` and ``suspend_when_proxy_unhealthy`` (its doc
examples) load from a policy's ``kumo.make_egress_source`` and through the sources
helper's TOML, where they were refused as not supported before."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kumocore.throttle.spec import ThrottleSpec
from tests.plugins.lua_policy.helpers.conftest import Load

LUA_POLICY = """
local kumo = require 'kumo'
kumo.on('get_egress_source', function(source_name)
  return kumo.make_egress_source {
    name = source_name,
    source_address = '10.0.0.1',
    suspend_when_unplumbed = { trigger = { Threshold = '3/1m' }, duration = '5m' },
  }
end)
"""

HELPER_POLICY = """
local kumo = require 'kumo'
local sources = require 'policy-extras.sources'
sources:setup { 'DIR/sources.toml' }
"""

SOURCES_TOML = """
[source."ip-1"]
source_address = "10.0.0.1"
suspend_when_unplumbed = { duration = "5m" }
[source."ip-2"]
socks5_proxy_server = "proxy.example.com:1080"
socks5_proxy_source_address = "10.0.0.1"
suspend_when_proxy_unhealthy = { trigger = { Threshold = "3/5m" }, duration = "10m" }
"""


async def test_make_egress_source_takes_a_threshold_rule(load_policy: Load) -> None:
    _, policy = await load_policy(LUA_POLICY)
    source = await policy.call_event("get_egress_source", "ip-1")
    rule = source.suspend_when_unplumbed
    assert (rule.trigger, rule.duration) == (ThrottleSpec(3, 60), 300)
    assert source.suspend_when_proxy_unhealthy is None


async def test_the_sources_helper_passes_the_rules_through(
    load_policy: Load, files: Callable[..., Path]
) -> None:
    files(sources__toml=SOURCES_TOML)
    _, policy = await load_policy(HELPER_POLICY)
    one = await policy.call_event("get_egress_source", "ip-1")
    assert one.suspend_when_unplumbed is not None
    assert (one.suspend_when_unplumbed.trigger, one.suspend_when_unplumbed.duration) == (
        "Immediate",
        300,
    )
    two = await policy.call_event("get_egress_source", "ip-2")
    assert two.suspend_when_proxy_unhealthy is not None
    assert two.suspend_when_proxy_unhealthy.trigger == ThrottleSpec(3, 300)
    assert two.suspend_when_proxy_unhealthy.duration == 600
