"""``configure_local_logs { filter_event = ... }`` on a running node with a Lua policy:
the event is asked about each message's records, per log directory, with KumoMTA's
reading of its answer (Lua truthiness; an error or a missing handler means "not here")."""

from __future__ import annotations

import smtplib
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from kumocore.logs.reader import iter_records
from kumocore.testing import Node

TWO_DIRS = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.configure_local_logs {{ log_dir = '{smtp}', filter_event = 'should_log_to_smtp_logs' }}
  kumo.configure_local_logs {{ log_dir = '{other}', filter_event = 'should_log_to_other' }}
end)
kumo.on('should_log_to_smtp_logs', function(msg)
  return msg:get_meta 'reception_protocol' == 'ESMTP'
end)
kumo.on('should_log_to_other', function(msg)
  return msg:get_meta 'reception_protocol' ~= 'ESMTP'
end)
"""


def records(directory: Path) -> list[dict[str, Any]]:
    return list(iter_records(directory)) if directory.exists() else []


def kinds(directory: Path) -> list[tuple[str, str]]:
    return sorted((r["type"], r["recipient"]) for r in records(directory))


def message(tag: str) -> str:
    return f"From: a@example.org\r\nSubject: {tag}\r\nX-Tag: {tag}\r\n\r\nbody\r\n"


async def test_the_docs_example_splits_esmtp_and_http_messages_into_two_log_dirs(
    make_node: Any,
    tmp_path: Path,
) -> None:
    smtp_dir, other_dir = tmp_path / "smtp", tmp_path / "other"
    node: Node = await make_node(TWO_DIRS.format(smtp=smtp_dir, other=other_dir))
    await node.send(recipients="by-smtp@example.com")
    status, answer = await node.inject(
        {
            "envelope_sender": "a@example.org",
            "recipients": [{"email": "by-http@example.com"}],
            "content": "Subject: hi\r\n\r\nvia http\r\n",
        }
    )
    assert status == 200 and answer["success_count"] == 1
    # An untrusted client relaying: a Rejection, which has no message to ask about.
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        await node.send(recipients="relay@example.com", source_address="127.0.0.5")
    await node.wait_for("Delivery", count=2)
    (rejection,) = await node.wait_for("Rejection")
    await node.stop()
    refused = ("Rejection", rejection["recipient"])
    assert kinds(smtp_dir) == [
        ("Delivery", "by-smtp@example.com"),
        ("Reception", "by-smtp@example.com"),
        refused,
    ]
    assert kinds(other_dir) == [
        ("Delivery", "by-http@example.com"),
        ("Reception", "by-http@example.com"),
        refused,
    ]
    stats = node.runtime.services.logs.stats()
    assert stats[f"local_logs:{smtp_dir}"]["filtered"] == 2  # the HTTP message's records
    assert stats[f"local_logs:{other_dir}"]["filtered"] == 2


NON_BOOLEAN = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.configure_local_logs {{ log_dir = '{logs}', filter_event = 'answer',
    per_record = {{ Any = {{ enable = false }}, Reception = {{ enable = true }} }} }}
end)
local answers = {{ zero = 0, empty = '', table = {{}}, yes = 'yes', ['nil'] = nil,
  ['false'] = false }}
kumo.on('answer', function(msg)
  local tag = msg:get_first_named_header_value 'X-Tag'
  if tag == 'none' then return end
  return answers[tag]
end)
"""


async def test_a_non_boolean_answer_is_read_with_lua_truthiness(
    make_node: Any,
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    node: Node = await make_node(NON_BOOLEAN.format(logs=logs))
    tags = ["zero", "empty", "table", "yes", "nil", "false", "none"]
    for tag in tags:
        await node.send(recipients=f"{tag}@example.com", message=message(tag))
    await node.wait_for("Delivery", count=len(tags))
    await node.stop()
    logged = sorted(r["recipient"].split("@")[0] for r in records(logs))
    assert logged == ["empty", "table", "yes", "zero"]  # 0, '' and {} are true in Lua
    # Only the Reception records were asked about: the sink writes no other type anyway.
    assert node.runtime.services.logs.stats()[f"local_logs:{logs}"]["filtered"] == 3


FAILING = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.configure_local_logs {{ log_dir = '{filtered}', filter_event = 'picky' }}
  kumo.configure_local_logs {{ log_dir = '{everything}' }}
end)
kumo.on('picky', function(msg)
  if msg:get_first_named_header_value 'X-Tag' == 'boom' then error('picky exploded') end
  return true
end)
"""


async def test_a_failing_handler_leaves_that_record_out_of_its_dir_only(
    make_node: Any,
    tmp_path: Path,
) -> None:
    filtered, everything = tmp_path / "filtered", tmp_path / "everything"
    node: Node = await make_node(FAILING.format(filtered=filtered, everything=everything))
    with capture_logs() as events:
        await node.send(recipients="boom@example.com", message=message("boom"))
        await node.send(recipients="fine@example.com", message=message("fine"))
        await node.wait_for("Delivery", count=2)  # the failing filter holds no mail back
        await node.stop()
    assert kinds(filtered) == [("Delivery", "fine@example.com"), ("Reception", "fine@example.com")]
    assert len(records(everything)) == 4
    errors = [e for e in events if e["event"].startswith("filter_event handler failed")]
    assert len(errors) == 2 and all(
        e["event"] == "filter_event handler failed; record not logged to this sink" for e in errors
    )
    assert {e["type"] for e in errors} == {"Reception", "Delivery"}
    assert all("picky exploded" in e["error"] and e["filter_event"] == "picky" for e in errors)


NO_HANDLER = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.configure_local_logs {{ log_dir = '{logs}', filter_event = 'nobody_handles_this' }}
end)
"""


async def test_an_event_without_handler_logs_no_message_records_and_warns_once(
    make_node: Any,
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    node: Node = await make_node(NO_HANDLER.format(logs=logs))
    with capture_logs() as events:
        for i in range(3):
            await node.send(recipients=f"r{i}@example.com")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            await node.send(recipients="relay@example.com", source_address="127.0.0.5")
        await node.wait_for("Delivery", count=3)  # mail still flows
        await node.wait_for("Rejection")
        await node.stop()
    assert [r["type"] for r in records(logs)] == ["Rejection"]  # never filtered
    warnings = [e for e in events if "does not register" in e["event"]]
    assert len(warnings) == 1 and warnings[0]["event"].startswith("filter_event names")
