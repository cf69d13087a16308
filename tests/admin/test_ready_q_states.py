"""``GET /api/admin/ready-q-states/v1`` on a running node: a ready queue held back by its
``max_connection_rate`` or by a used-up connection limit says so, with KumoMTA's names."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from kumocore.testing.node import SINK_HOST, Node
from kumocore.testing.plugin import MakeNode
from kumocore.testing.smtp_sink import RecordingSink

PATH = "/api/admin/ready-q-states/v1"
READY_Q = f"unspecified->{SINK_HOST}@smtp_client"
POLICY = """
local kumo = require 'kumo'
kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path {
    smtp_port = PORT, prohibited_hosts = {}, idle_timeout = '200ms',
    max_deliveries_per_connection = 1, OPTIONS }
end)
"""


async def node_with(make_node: MakeNode, options: str) -> Node:
    sink = await RecordingSink().start()
    policy = POLICY.replace("PORT", str(sink.port)).replace("OPTIONS", options)
    return await make_node(policy, sink=sink)


async def states(node: Node, query: str = "") -> dict[str, object]:
    status, answer = await node.admin("GET", PATH + query)
    assert status == 200, answer
    assert set(answer) == {"states_by_ready_queue"}
    result: dict[str, object] = answer["states_by_ready_queue"]
    return result


async def wait_for_state(node: Node, name: str, timeout: float = 10.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        found = await states(node)
        entry = found.get(READY_Q)
        if isinstance(entry, dict) and name in entry:
            return dict(entry[name])
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.1)


async def test_a_queue_waiting_for_its_connection_rate_is_listed_as_rate_throttled(
    make_node: MakeNode,
) -> None:
    node = await node_with(make_node, "max_connection_rate = '1/min'")
    assert await states(node) == {}  # nothing held back yet
    await node.send(recipients="first@dest.test")
    await node.wait_for("Delivery")
    before = time.time()
    await node.send(recipients="second@dest.test")  # its connection must wait a minute
    state = await wait_for_state(node, "connection_rate_throttled")
    assert state["context"].startswith("max_connection_rate throttling for ")
    since = datetime.fromisoformat(state["since"].replace("Z", "+00:00")[:26] + "+00:00")
    assert before - 1 <= since.timestamp() <= time.time()
    assert node.sink is not None and len(node.sink.messages) == 1
    assert await states(node, f"?queues={READY_Q}") != {}
    assert await states(node, "?queues=src->elsewhere@smtp_client,other") == {}


async def test_a_queue_whose_shared_connection_limit_is_used_up_is_listed_as_limited(
    make_node: MakeNode,
) -> None:
    # Two sources, two ready queues, one shared connection between them: while one
    # path's connection is open, the other one is refused its lease.
    sink = await RecordingSink().start()
    node = await make_node(SHARED_LIMIT_POLICY.replace("PORT", str(sink.port)), sink=sink)
    await node.send(recipients=[f"r{n}@dest.test" for n in range(6)])
    found: dict[str, object] = {}
    deadline = time.monotonic() + 10
    while not any(isinstance(e, dict) and "connection_limited" in e for e in found.values()):
        assert time.monotonic() < deadline, found
        found = await states(node)
        await asyncio.sleep(0.02)
    entry = next(e for e in found.values() if isinstance(e, dict) and "connection_limited" in e)
    assert entry["connection_limited"]["context"] == "TooManyLeases for shared"
    await sink.wait_for(6, timeout=20)  # both paths deliver in turn


SHARED_LIMIT_POLICY = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.define_egress_source { name = 's1', source_address = '127.0.10.1' }
  kumo.define_egress_source { name = 's2', source_address = '127.0.10.2' }
  kumo.define_egress_pool { name = 'both', entries = { { name = 's1' }, { name = 's2' } } }
end)
kumo.on('get_queue_config', function()
  return kumo.make_queue_config { egress_pool = 'both' }
end)
kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path {
    smtp_port = PORT, prohibited_hosts = {}, idle_timeout = '1s',
    additional_connection_limits = { shared = 1 } }
end)
"""


def test_the_workers_answers_merge_into_one_state_per_queue_since_the_earliest() -> None:
    import json

    from aiohttp import web

    from kumocore.admin.peers import PeerAnswer
    from kumocore.admin.ready_q_states import merge_states

    def answer(states: dict[str, object]) -> bytes:
        return json.dumps({"states_by_ready_queue": states}).encode()

    early = {"context": "TooManyLeases for shared", "since": "2026-01-01T10:00:00.000000000Z"}
    late = {"context": "TooManyLeases for shared", "since": "2026-01-01T10:00:05.000000000Z"}
    rate = {"context": "max_connection_rate throttling for 3.000s",
            "since": "2026-01-01T10:00:01.000000000Z"}  # fmt: skip
    local = web.Response(body=answer({"a": {"connection_limited": late}}),
                         content_type="application/json")  # fmt: skip
    merged = merge_states(local, [
        PeerAnswer(1, 200, answer({"a": {"connection_limited": early}, "b": {
            "connection_rate_throttled": rate}})),
        PeerAnswer(2, 0, b""),  # a worker that did not answer
    ])
    assert json.loads(merged.body) == {"states_by_ready_queue": {  # type: ignore[arg-type]
        "a": {"connection_limited": early}, "b": {"connection_rate_throttled": rate}}}
