"""The Lua bridge of ``smtp_server_get_dynamic_parameters``: KumoMTA's handler shape
``function(listener, conn_meta)`` is accepted at load, gets the listener address and the
live connection meta, and its table comes back to Python as the overrides (nil as None).
The listener side is in tests/smtp/test_dynamic_parameters.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from kumocore import PolicyError

from .support import load

POLICY = """\
    local kumo = require 'kumo'
    kumo.on('smtp_server_get_dynamic_parameters', function(listener, conn_meta)
      local mode = conn_meta:get_meta('mode')
      conn_meta:set_meta('asked_for', listener)
      if mode == 'nil' then return nil end
      if mode == 'list' then return { 'a', 'b' } end
      if mode == 'empty' then return {} end
      return {
        hostname = 'mx.' .. mode .. '.example',
        via = { ['10.0.0.1'] = { banner = 'via banner', meta = { n = 1 } } },
      }
    end)
"""


async def test_handler_gets_the_listener_address_and_live_meta_and_answers_a_table(
    tmp_path: Path,
) -> None:
    runtime, policy = await load(tmp_path, POLICY)
    assert "smtp_server_get_dynamic_parameters" in policy.events
    assert runtime.hooks.implemented("smtp_server_get_dynamic_parameters")
    meta = {"mode": "customer"}
    answer = await runtime.hooks.smtp_server_get_dynamic_parameters("10.0.0.1:25", meta)
    assert answer == {
        "hostname": "mx.customer.example",
        "via": {"10.0.0.1": {"banner": "via banner", "meta": {"n": 1}}},
    }
    assert meta["asked_for"] == "10.0.0.1:25"


@pytest.mark.parametrize(("mode", "expected"), [("nil", None), ("empty", {})])
async def test_nil_answers_none_and_an_empty_table_no_overrides(
    tmp_path: Path, mode: str, expected: dict[str, object] | None
) -> None:
    runtime, _ = await load(tmp_path, POLICY)
    answer = await runtime.hooks.smtp_server_get_dynamic_parameters("127.0.0.1:25", {"mode": mode})
    assert answer == expected


async def test_an_answer_that_is_not_a_table_of_options_is_a_policy_error(
    tmp_path: Path,
) -> None:
    runtime, _ = await load(tmp_path, POLICY)
    with pytest.raises(PolicyError, match="must return a table of listener parameters"):
        await runtime.hooks.smtp_server_get_dynamic_parameters("127.0.0.1:25", {"mode": "list"})


async def test_a_policy_without_the_handler_does_not_implement_the_event(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, "require('kumo').on('smtp_server_ehlo', function() end)")
    # What the listener checks once per connection before paying for the event.
    assert not runtime.hooks.implemented("smtp_server_get_dynamic_parameters")
