"""msg:import_headers(SPECS): header values into meta by name or X-* prefix, with KumoMTA's
match modes, key transforms, explicit targets and optional removal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kumocore.mail.message import Message
from tests.plugins.lua_policy.support import Recorder, load

DATA = (
    b"Received: from a\r\n"
    b"X-Campaign-Id: spring\r\n"
    b"Received: from b\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?=\r\n"
    b"X-Tenant: one\r\n"
    b"x-tenant: two\r\n"
    b"\r\n"
    b"body\r\n"
)


def message(data: bytes = DATA) -> Message:
    return Message("alice@examplecorp.com", "bob@gmail.com", data)


def imported(*specs: dict[str, Any]) -> Message:
    msg = message()
    msg.import_headers(list(specs))
    return msg


def test_default_is_the_last_value_under_a_snake_case_key() -> None:
    assert imported({"name": "X-Tenant"}, {"name": "X-Campaign-Id"}).meta == {
        "x_tenant": "two", "x_campaign_id": "spring"}


def test_match_first_and_match_all() -> None:
    msg = imported({"name": "X-Tenant", "match": "first"}, {"name": "Received", "match": "all"})
    assert msg.meta == {"x_tenant": "one", "received": ["from a", "from b"]}


def test_values_are_rfc2047_decoded() -> None:
    assert imported({"name": "subject"}).meta == {"subject": "café"}


def test_a_spec_matching_nothing_writes_nothing_even_for_all() -> None:
    assert imported({"name": "X-Missing", "match": "all"}).meta == {}


@pytest.mark.parametrize(("transform", "key"), [
    ("snake_case", "x_campaign_id"), ("kebab_case", "x-campaign-id"),
    ("camel_case", "xCampaignId"), ("pascal_case", "XCampaignId"),
])
def test_transforms_name_the_meta_key(transform: str, key: str) -> None:
    assert imported({"name": "X-Campaign-Id", "transform": transform}).meta == {key: "spring"}


def test_the_first_matching_spec_wins_so_a_precise_rule_beats_a_wildcard() -> None:
    msg = imported({"name": "X-Campaign-Id", "target": "campaign_id"}, {"name": "x-*"})
    assert msg.meta == {"campaign_id": "spring", "x_tenant": "two"}


def test_remove_drops_only_the_headers_its_spec_matched() -> None:
    msg = imported({"name": "X-Campaign-Id"}, {"name": "X-*", "remove": True})
    assert msg.meta == {"x_campaign_id": "spring", "x_tenant": "two"}
    assert msg.get_data() == (
        b"Received: from a\r\nX-Campaign-Id: spring\r\nReceived: from b\r\n"
        b"Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\nbody\r\n")


@pytest.mark.parametrize(("spec", "error"), [
    ({"name": "X-*", "target": "t"}, "`target` cannot be used with wildcard pattern"),
    ({"name": "*"}, "bare `\\*` patterns are not supported"),
    ({"name": "*-Id"}, "only a single trailing `\\*` is supported"),
    ({"name": "X-**"}, "only a single trailing `\\*` is supported"),
    ({"name": ""}, "header name pattern must not be empty"),
    ({"name": "X-A", "match": "middle"}, "unknown match 'middle'"),
    ({"name": "X-A", "transform": "upper"}, "unknown transform 'upper'"),
    ({"name": "X-A", "colour": "red"}, "unknown field `colour`"),
])
def test_malformed_specs_are_refused_before_anything_changes(
    spec: dict[str, Any], error: str,
) -> None:
    msg = message()
    with pytest.raises(ValueError, match=error):
        msg.import_headers([{"name": "X-Tenant", "remove": True}, spec])
    assert msg.meta == {}
    assert msg.get_data() == DATA


async def test_lua_import_headers_imports_and_strips(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          msg:import_headers {
            { name = 'X-Campaign-Id', target = 'campaign_id' },
            { name = 'X-*', remove = true },
            { name = 'Received', match = 'all' },
          }
          kumo.test.mark(msg:get_meta 'campaign_id')
          kumo.test.mark(msg:get_meta 'x_tenant')
          kumo.test.mark(msg:get_meta 'received')
          kumo.test.mark(msg:get_first_named_header_value 'X-Tenant')
          local ok, err = pcall(function() msg:import_headers { { name = '*' } } end)
          kumo.test.mark(tostring(err):find('bare `*` patterns are not supported', 1, true) ~= nil)
        end)
    """, recorder=recorder)
    await runtime.hooks.smtp_server_message_received(message(), {})
    assert recorder.marks == ["spring", "two", ["from a", "from b"], None, True]
