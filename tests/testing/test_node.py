"""kumocore.testing: the fixtures give a real node (listeners, spool, logs, sink, DNS)."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from kumocore import hookimpl
from kumocore.config import QueueConfig
from kumocore.testing import Node
from kumocore.testing.plugin import MakeNode

LUA_POLICY = """
local kumo = require 'kumo'
kumo.on('smtp_server_mail_rcpt_to', function(recipient)
  if recipient.user == 'nobody' then
    kumo.reject(550, '5.1.1 no such user here')
  end
end)
"""


async def test_default_node_delivers_smtp_mail_to_its_sink_and_logs_it(
    kumocore_node: Node,
) -> None:
    assert await kumocore_node.send("a@example.org", "b@example.com") == {}
    [received] = await kumocore_node.sink.wait_for(1)  # type: ignore[union-attr]
    assert received.recipient == "b@example.com" and b"hello" in received.data
    [delivery] = await kumocore_node.wait_for("Delivery", recipient="b@example.com")
    assert delivery["response"]["code"] == 250
    assert [r["type"] for r in kumocore_node.logs(recipient="b@example.com")] == [
        "Reception", "Delivery"]


async def test_lua_policy_from_a_string_rejects_through_its_event(make_node: MakeNode) -> None:
    node = await make_node(LUA_POLICY, entrypoints=True)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await node.send("a@example.org", "nobody@example.com")
    code, text = refused.value.recipients["nobody@example.com"]
    assert code == 550 and b"no such user here" in text
    assert node.logs("Reception") == []


async def test_python_policy_object_and_zone_route_a_domain_to_a_null_mx(
    make_node: MakeNode,
) -> None:
    class Tenants:
        @hookimpl
        def kumo_get_queue_config(self) -> QueueConfig:
            return QueueConfig.from_options({"max_age": "5 minutes"})

    node = await make_node(plugins=[Tenants()], entrypoints=False,
                           zones={"nullmx.example": {"MX": [(0, ".")]}})
    await node.send("a@example.org", ["x@nullmx.example", "y@example.com"])
    [bounce] = await node.wait_for("Bounce", recipient="x@nullmx.example")
    assert bounce["response"]["code"] >= 500
    await node.wait_for("Delivery", recipient="y@example.com")
    assert [m.recipient for m in node.sink.messages] == ["y@example.com"]  # type: ignore[union-attr]


PYTHON_POLICY = """
from kumocore import hookimpl

@hookimpl
def kumo_smtp_server_message_received(message, conn_meta):
    message.set_meta("tenant", "from-python")
"""


async def test_python_policy_from_a_string_sets_meta_seen_in_the_log(
    make_node: MakeNode,
) -> None:
    node = await make_node(PYTHON_POLICY, language="python", entrypoints=False)
    await node.send("a@example.org", "e@example.com")
    [received] = await node.wait_for("Reception", recipient="e@example.com")
    assert received["meta"]["tenant"] == "from-python"


async def test_held_node_keeps_mail_queued_and_undelivered(make_node: MakeNode) -> None:
    node = await make_node(entrypoints=False)
    await node.hold()
    await node.send("a@example.org", "f@example.com")
    await node.wait_for("Reception", recipient="f@example.com")
    status, summary = await node.admin("GET", "/api/admin/queue-summary/v1")
    assert status == 200 and summary["totals"]["scheduled"] == 1
    assert node.sink.messages == []  # type: ignore[union-attr]


async def test_http_inject_is_accepted_and_delivered(make_node: MakeNode) -> None:
    node = await make_node(entrypoints=False)
    status, answer = await node.inject({
        "envelope_sender": "a@example.org",
        "recipients": [{"email": "c@example.com"}],
        "content": "Subject: hi\r\n\r\nvia http\r\n",
    })
    assert status == 200 and answer["success_count"] == 1
    await node.wait_for("Delivery", recipient="c@example.com")


async def test_rocksdb_spool_lives_in_the_node_tmp_dir(make_node: MakeNode,
                                                      tmp_path: Path) -> None:
    node = await make_node(spool="rocksdb", entrypoints=True, tmp_path=tmp_path, sink=False)
    await node.send("a@example.org", "d@example.com")
    await node.wait_for("Reception", recipient="d@example.com")
    assert any((tmp_path / "spool" / "meta").iterdir())


async def test_policy_file_path_and_start_failure_cleans_up(tmp_path: Path) -> None:
    broken = tmp_path / "broken.lua"
    broken.write_text(
        "local kumo = require 'kumo'\nkumo.on('init', function() error('boom') end)\n")
    node = Node(broken, entrypoints=True)
    with pytest.raises(Exception, match="boom"):
        await node.start()
    with pytest.raises(RuntimeError, match="not started"):
        _ = node.runtime


async def test_wait_for_names_what_arrived_when_it_times_out(kumocore_node: Node) -> None:
    with pytest.raises(AssertionError, match="expected 1 Bounce"):
        await kumocore_node.wait_for("Bounce", timeout=0.2)
