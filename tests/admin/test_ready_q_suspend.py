"""``/api/admin/suspend-ready-q/v1`` and ``/api/admin/bump-config-epoch`` on a running node:
its real HTTP listener, real queues, and a real SMTP sink that the suspended ready queue
must not reach until the suspension is cancelled or over."""

from __future__ import annotations

import asyncio
import json
import re
import smtplib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from kumocore.node.runtime import Runtime
from kumocore.testing.node import SINK_HOST, Node
from kumocore.testing.plugin import MakeNode
from tests.support.admin_cli import run_cli

PATH = "/api/admin/suspend-ready-q/v1"
#: The one ready queue of a node whose mail all goes to the test sink.
READY_Q = f"unspecified->{SINK_HOST}@smtp_client"
#: Long enough for a message that is not held to reach the sink many times over.
QUIET = 1.5


async def suspend(node: Node, name: str = READY_Q, **fields: str) -> str:
    status, answer = await node.admin("POST", PATH, {"name": name, "reason": "test", **fields})
    assert status == 200, answer
    assert set(answer) == {"id"}
    return str(answer["id"])


async def assert_not_delivered(node: Node, expected_so_far: int) -> None:
    await asyncio.sleep(QUIET)
    assert node.sink is not None and len(node.sink.messages) == expected_so_far


async def test_a_suspended_ready_queue_delivers_nothing_until_the_suspension_is_cancelled(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    suspension = await suspend(node, duration="1h")
    await node.send(recipients="held@dest.test")  # its path opens held
    await assert_not_delivered(node, 0)
    status, summary = await node.admin("GET", "/api/admin/queue-summary/v1")
    assert [(q["name"], q["count"]) for q in summary["ready"]] == [(READY_Q, 1)]
    status, answer = await node.admin("DELETE", PATH, {"id": suspension})
    assert (status, answer) == (200, {"id": suspension})
    assert node.sink is not None
    await node.sink.wait_for(1)
    assert node.sink.messages[0].recipient == "held@dest.test"


async def test_a_suspension_of_an_open_ready_queue_holds_it_and_lapses_by_itself(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    await node.send(recipients="first@dest.test")
    await node.wait_for("Delivery")  # the path is open now
    await suspend(node, duration="3s")
    started = time.monotonic()
    await node.send(recipients="second@dest.test")
    await assert_not_delivered(node, 1)
    assert node.sink is not None
    await node.sink.wait_for(2, timeout=10)
    assert time.monotonic() - started >= 2.5  # held until the suspension was over
    status, listed = await node.admin("GET", PATH)
    assert (status, listed) == (200, [])  # an expired suspension is no longer listed


async def test_a_suspension_holds_only_the_ready_queue_it_names(make_node: MakeNode) -> None:
    node = await make_node()
    await suspend(node, name="unspecified->mx.elsewhere.test@smtp_client", duration="1h")
    await node.send(recipients="free@dest.test")
    assert node.sink is not None
    await node.sink.wait_for(1)


async def test_the_list_shows_kumomta_fields_and_a_second_suspension_replaces_the_first(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    first = await suspend(node, duration="1h")
    expires = datetime.now(UTC) + timedelta(minutes=10)
    second = await node.admin("POST", PATH, {"name": READY_Q, "reason": "again",
                                             "expires": expires.isoformat()})  # fmt: skip
    assert second[0] == 200 and second[1]["id"] != first
    status, listed = await node.admin("GET", PATH)
    assert status == 200 and len(listed) == 1
    entry = listed[0]
    assert set(entry) == {"id", "name", "reason", "duration", "expires"}
    assert (entry["id"], entry["name"], entry["reason"]) == (second[1]["id"], READY_Q, "again")
    assert re.fullmatch(r"\d+s", entry["duration"]) and 595 <= int(entry["duration"][:-1]) <= 600
    listed_expiry = datetime.fromisoformat(entry["expires"].replace("Z", "+00:00"))
    assert abs((listed_expiry - expires).total_seconds()) < 1
    status, answer = await node.admin("DELETE", PATH, {"id": first})  # replaced: gone
    assert status == 404 and "error" in answer


async def test_cancelling_an_unknown_id_is_a_404_with_a_json_error(make_node: MakeNode) -> None:
    node = await make_node()
    status, answer = await node.admin("DELETE", PATH, {"id": "no-such-suspension"})
    assert status == 404
    assert answer == {"error": "no active ready-queue suspension with id 'no-such-suspension'"}


async def test_malformed_requests_are_refused_with_a_json_error_and_hold_nothing(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    bad_bodies = [
        {"reason": "no name"},
        {"name": READY_Q},
        {"name": "", "reason": "empty name"},
        {"name": READY_Q, "reason": "x", "duration": "soon"},
        {"name": READY_Q, "reason": "x", "duration": 60},
        {"name": READY_Q, "reason": "x", "expires": "tomorrow"},
        {"name": READY_Q, "reason": "x", "expires": "2030-01-01T00:00:00"},  # no zone
        {"name": READY_Q, "reason": "x", "domain": "dest.test"},  # not a field of this API
        ["not", "an", "object"],
    ]
    for body in bad_bodies:
        async with aiohttp.ClientSession() as session, session.post(
                node.http_url + PATH, json=body) as response:  # fmt: skip
            assert response.status == 400, body
            assert "error" in await response.json(), body
    async with aiohttp.ClientSession() as session, session.post(
            node.http_url + PATH, data=b"{not json",
            headers={"Content-Type": "application/json"}) as response:  # fmt: skip
        assert response.status == 400 and "error" in await response.json()
    status, answer = await node.admin("DELETE", PATH, {"no_id": 1})
    assert status == 400 and "error" in answer
    assert (await node.admin("GET", PATH)) == (200, [])


COUNTING_POLICY = """
local kumo = require 'kumo'
-- Runs each time the policy file is evaluated: at load, and again on every epoch bump.
local f = io.open('{loads}', 'a')
f:write('loaded\\n')
f:close()
"""


async def wait_for_lines(path: Path, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while path.read_text().count("loaded") < count:
        assert time.monotonic() < deadline, path.read_text()
        await asyncio.sleep(0.05)


async def test_bumping_the_config_epoch_evaluates_the_lua_policy_again(
    make_node: MakeNode, tmp_path: Path,
) -> None:
    loads = tmp_path / "loads"
    loads.write_text("")
    node = await make_node(COUNTING_POLICY.format(loads=loads), sink=False)
    await wait_for_lines(loads, 1)
    epoch = node.runtime.hooks.config_epoch()
    status, answer = await node.admin("POST", "/api/admin/bump-config-epoch", {})
    assert (status, answer) == (200, "")  # KumoMTA's answer: 200, empty body
    assert node.runtime.hooks.config_epoch() == epoch + 1
    await wait_for_lines(loads, 2)


async def test_bumping_without_any_epoch_provider_is_refused(make_node: MakeNode) -> None:
    node = await make_node(entrypoints=False)  # no Lua policy plugin: nothing provides one
    status, answer = await node.admin("POST", "/api/admin/bump-config-epoch", {})
    assert status == 501 and "kumo_register_config_epoch_bump" in answer["error"]


async def test_the_cli_suspends_lists_cancels_and_bumps_with_kcli_names(
    make_node: MakeNode, capsys: pytest.CaptureFixture[str],
) -> None:
    node = await make_node()
    endpoint = ("--endpoint", node.http_url)
    code, out, _ = await run_cli(capsys, "suspend-ready-q", "--name", READY_Q,
                                 "--reason", "cli", "--duration", "1h", *endpoint)  # fmt: skip
    assert code == 0
    suspension = json.loads(out)["id"]
    code, out, _ = await run_cli(capsys, "suspend-ready-q-list", *endpoint)
    assert code == 0 and [(s["id"], s["reason"]) for s in json.loads(out)] == [
        (suspension, "cli")]
    await node.send(recipients="cli@dest.test")
    await assert_not_delivered(node, 0)
    code, out, _ = await run_cli(capsys, "inspect-ready-q", READY_Q, *endpoint)
    assert code == 0 and out.startswith(f"queue: {READY_Q}\n")  # kcli's text
    assert "\nready: 1\n" in out and "\nsuspended: cli\n" in out
    assert "config:" not in out and "scheduled queues:" not in out  # only when asked for
    code, out, _ = await run_cli(capsys, "inspect-ready-q", READY_Q, "--json", *endpoint)
    assert code == 0 and json.loads(out)["scheduled_queue_names"] == ["dest.test"]
    code, out, _ = await run_cli(capsys, "suspend-ready-q-cancel", suspension, *endpoint)
    assert code == 0 and json.loads(out) == {"id": suspension}
    assert node.sink is not None
    await node.sink.wait_for(1)
    code, _, err = await run_cli(capsys, "suspend-ready-q-cancel", suspension, *endpoint)
    assert code == 1 and "no active ready-queue suspension" in json.loads(err)["error"]
    code, out, _ = await run_cli(capsys, "bump-config-epoch", *endpoint)
    assert code == 0 and json.loads(out) == {"bumped": True}


POLICY_SUSPENDS = """
local kumo = require 'kumo'
local api = kumo.api.admin.suspend_ready_q
kumo.on('smtp_server_message_received', function(msg)
  local recipient = tostring(msg:recipient())
  if recipient:find('^hold@') then
    api.suspend { name = 'READY_Q', reason = 'held by policy', duration = '1h' }
  elseif recipient:find('^release@') then
    for _, suspension in ipairs(api.list()) do
      assert(api.delete(suspension.id))
    end
    assert(not api.delete('no-such-id'))
  end
end)
""".replace("READY_Q", READY_Q)


async def test_a_policy_suspends_lists_and_deletes_ready_queue_suspensions(
    make_node: MakeNode,
) -> None:
    node = await make_node(POLICY_SUSPENDS)
    await node.send(recipients="hold@dest.test")
    status, listed = await node.admin("GET", PATH)
    assert status == 200 and [(s["name"], s["reason"]) for s in listed] == [
        (READY_Q, "held by policy")]
    await assert_not_delivered(node, 0)
    await node.send(recipients="release@dest.test")
    assert node.sink is not None
    await node.sink.wait_for(2)
    assert (await node.admin("GET", PATH)) == (200, [])


async def test_a_policy_suspension_with_an_unknown_field_fails_the_handler(
    make_node: MakeNode,
) -> None:
    policy = POLICY_SUSPENDS.replace("duration = '1h'", "duration = '1h', tenant = 'x'")
    node = await make_node(policy)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await node.send(recipients="hold@dest.test")
    assert refused.value.smtp_code // 100 in (4, 5)
    assert (await node.admin("GET", PATH)) == (200, [])


async def test_automation_syncs_neither_lift_an_operator_hold_nor_are_lifted_by_its_cancel(
    runtime: Runtime,
) -> None:
    from kumocore.queue.ready_suspend import ReadyQueueSuspension
    from kumocore.tsa.apply import Applier
    from kumocore.tsa.store import ActiveAction
    from tests.admin.conftest import make_ready

    assert runtime.services is not None
    manager = runtime.services.queues
    ready = make_ready(manager, [])
    name = ready.key.name
    holds = manager.egress.ready_holds
    holds.add(ReadyQueueSuspension(name=name, reason="operator", expires=time.time() + 60))
    applier = Applier(runtime.hooks)
    applier.queues = manager
    await applier.apply({}, {})  # an automation sync with no Suspend of its own
    assert ready.suspended
    now = time.time()
    tsa_hold = ActiveAction(id="a1", kind="Suspend", rule="test", reason="tsa", site=name,
                            site_name="", source="", domain="", since=now,
                            expires=now + 30)  # fmt: skip
    await applier.apply({}, {"a1": tsa_hold})
    assert ready.suspended_until == holds.held_until(name)  # the later of the two
    suspension = holds.list()[0]
    assert holds.cancel(suspension.id) is suspension
    await applier.apply({"a1": tsa_hold}, {"a1": tsa_hold})
    assert ready.suspended and ready.suspended_until == tsa_hold.expires


INSPECT = "/api/admin/inspect-ready-q/v1"


async def test_inspect_ready_q_shows_a_held_queue_its_messages_and_then_its_connection(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    suspension = await suspend(node, duration="1h")
    await node.send(recipients=["a@dest.test", "b@other.test"])
    query = f"{INSPECT}?queue_name={READY_Q}&include_scheduled_queues=true"
    deadline = time.monotonic() + 5
    while (view := (await node.admin("GET", query))[1]).get("state", {}).get(
            "ready_count") != 2:  # routing puts them in the ready queue  # fmt: skip
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.05)
    assert (view["queue_name"], view["egress_source"], view["protocol"]) == (
        READY_Q, "unspecified", "smtp_client")
    assert view["state"]["ready_count"] == 2 and view["state"]["connection_count"] == 0
    assert view["state"]["suspended"]["id"] == suspension
    assert view["scheduled_queue_names"] == ["dest.test", "other.test"]
    assert view["mx"]["site_name"] == SINK_HOST and view["dispatchers"] == []
    assert node.sink is not None and view["path_config"]["smtp_port"] == node.sink.port
    assert view["egress_pool"] == "unspecified"  # the pool of the queue that opened it
    # the derived dispatcher_progress_watchdog_timeout: 2 x the 300 s command timeouts
    assert view["state"]["watchdog_threshold"] == "10m"
    assert view["constraints"]["max_concurrent_dispatchers"]["display"] == "32"
    status, view = await node.admin("GET", f"{INSPECT}?queue_name={READY_Q}")
    assert status == 200 and "scheduled_queue_names" not in view

    await node.admin("DELETE", PATH, {"id": suspension})
    seen: list[dict[str, str]] = []
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:  # the connection idles 0.2 s
        seen = (await node.admin("GET", f"{INSPECT}?queue_name={READY_Q}"))[1]["dispatchers"]
    assert seen and set(seen[0]) == {
        "session_id", "started_at", "age", "phase", "detail", "time_in_current_phase",
        "messages_delivered", "messages_transfailed", "messages_failed",
        "delivered_this_connection", "overall_rate_per_sec"}  # fmt: skip
    await node.sink.wait_for(2)


async def test_inspect_ready_q_refuses_an_unknown_queue_and_a_missing_name(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    status, answer = await node.admin("GET", f"{INSPECT}?queue_name=nope")
    assert (status, answer) == (404, {"error": "no such ready queue nope"})
    status, answer = await node.admin("GET", INSPECT)
    assert status == 400 and "queue_name" in answer["error"]
    status, answer = await node.admin(
        "GET", f"{INSPECT}?queue_name={READY_Q}&include_scheduled_queues=maybe")
    assert status == 400 and "include_scheduled_queues" in answer["error"]
