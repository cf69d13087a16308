"""``kumo.configure_log_disposition_hook`` and ``log_hooks:new_disposition_hook`` in
process: KumoMTA's options, the refusals (unknown key, duplicate name, no handler) and
which records reach the handler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kumocore.errors import ConfigError
from kumocore.loghooks.disposition import parse_disposition_options
from tests.plugins.lua_policy.support import load

HOOKED = """
local kumo = require 'kumo'
local log_hooks = require 'policy-extras.log_hooks'
log_hooks:new_disposition_hook { name = 'x', hook = function(msg, log_record) end }
"""


def test_options_take_name_and_per_record() -> None:
    config = parse_disposition_options(
        {"name": "ndr", "per_record": {"Any": {"enable": False}, "Bounce": {"enable": True}}})
    assert config.event == "log_disposition_ndr"
    assert config.wants("Bounce") and not config.wants("Delivery")
    assert parse_disposition_options({"name": "ndr"}).wants("Expiration")


@pytest.mark.parametrize(("options", "says"), [
    ({}, "name is required"),
    ({"name": "x", "headers": ["Subject"]}, "unknown option 'headers'"),
    ({"name": "x", "per_record": {"Nope": {}}},
     "configure_log_disposition_hook: per_record.Nope: unknown record type"),
])
def test_options_refuse_what_kumomta_refuses(options: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_disposition_options(options)


async def test_helper_registers_the_event_and_configures_the_hook_in_pre_init(
    tmp_path: Path,
) -> None:
    runtime, policy = await load(tmp_path, HOOKED)
    assert policy.has_custom_event("log_disposition_x")  # a short name is no typo
    await runtime.hooks.pre_init(runtime.kumo)
    [sink] = [s for s in runtime.hooks.log_sinks() if s.name == "log_disposition:x"]
    assert sink.config.name == "x"
    with pytest.raises(ConfigError, match="a hook named 'x' is already configured"):
        runtime.kumo.configure_log_disposition_hook(name="x")


async def test_a_hook_nothing_handles_is_refused_naming_the_event(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, "local kumo = require 'kumo'\n")
    with pytest.raises(ConfigError, match=r"register kumo.on\('log_disposition_ndr'"):
        runtime.kumo.configure_log_disposition_hook(name="ndr")


@pytest.mark.parametrize(("options", "says"), [
    ("{ name = 'x' }", "hook is required"),
    ("{ name = 'x', hook = function() end, filter = 1 }", "unknown option 'filter'"),
])
async def test_helper_refuses_bad_options(tmp_path: Path, options: str, says: str) -> None:
    source = ("local log_hooks = require 'policy-extras.log_hooks'\n"
              f"log_hooks:new_disposition_hook {options}\n")
    with pytest.raises(Exception, match=says):
        await load(tmp_path, source)
