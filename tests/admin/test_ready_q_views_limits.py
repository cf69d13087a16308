"""``inspect-ready-q`` and ``ready-q-states`` on a running node: a query parameter they do
not take is refused rather than ignored, and listing the scheduled queues of a very long
ready queue does not hold up the worker's event loop."""

from __future__ import annotations

import asyncio
import time

import pytest

from kumocore.mail.message import Message
from kumocore.testing.node import SINK_HOST
from kumocore.testing.plugin import MakeNode
from tests.support.ticker import LoopTicker

READY_Q = f"unspecified->{SINK_HOST}@smtp_client"
INSPECT = "/api/admin/inspect-ready-q/v1"
STATES = "/api/admin/ready-q-states/v1"
SUSPEND = "/api/admin/suspend-ready-q/v1"
#: Messages in the held ready queue: listing their scheduled queues in one go took
#: about 0.15 s of the event loop at once.
MANY = 300_000


@pytest.mark.parametrize("query", [
    f"{INSPECT}?queue_name={READY_Q}&include_scheduled_queue=true",  # a typo
    f"{INSPECT}?queue_name={READY_Q}&limit=10",
    f"{STATES}?queue={READY_Q}",  # a typo of 'queues': would list every queue
])  # fmt: skip
async def test_a_query_parameter_the_view_does_not_take_is_a_400(
    make_node: MakeNode, query: str
) -> None:
    node = await make_node()
    await node.admin("POST", SUSPEND, {"name": READY_Q, "reason": "r", "duration": "1h"})
    await node.send(recipients="a@dest.test")  # opens the ready queue
    status, answer = await node.admin("GET", query)
    assert status == 400, answer
    assert "unknown query parameter" in answer["error"]


async def test_listing_the_scheduled_queues_of_a_long_ready_queue_keeps_the_loop_free(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    status, _ = await node.admin(
        "POST", SUSPEND, {"name": READY_Q, "reason": "r", "duration": "1h"})
    assert status == 200
    await node.send(recipients="a@dest.test")
    services = node.runtime.services
    assert services is not None
    deadline = time.monotonic() + 5
    while not (paths := [p for p in services.queues.paths.values() if p.key.name == READY_Q]):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    (path,) = paths
    for n in range(MANY):  # held: none of them is delivered, nor read from a spool
        path.add(Message("s@src.test", f"r{n}@d{n % 7}.test", b"Subject: x\r\n\r\nx\r\n"))

    async with LoopTicker() as ticker:
        await asyncio.sleep(0.05)
        status, view = await node.admin(
            "GET", f"{INSPECT}?queue_name={READY_Q}&include_scheduled_queues=true")
    assert status == 200
    assert view["scheduled_queue_names"] == ["d0.test", "d1.test", "d2.test", "d3.test",
                                             "d4.test", "d5.test", "d6.test", "dest.test"]
    assert view["state"]["ready_count"] == MANY + 1
    assert ticker.longest < 0.1, f"the event loop stood still for {ticker.longest:.3f} s"


def test_with_several_workers_a_refused_states_query_keeps_its_error() -> None:
    """The fan-out merge of ``ready-q-states`` answers a refused query with the error, not
    with an empty listing under the error's status."""
    import json

    from aiohttp import web

    from kumocore.admin.peers import PeerAnswer
    from kumocore.admin.ready_q_states import merge_states

    error = {"error": "unknown query parameter(s) 'queue'; this request takes queues"}
    local = web.json_response(error, status=400)
    merged = merge_states(local, [PeerAnswer(1, 400, json.dumps(error).encode())])
    assert merged.status == 400
    assert json.loads(merged.body) == error  # type: ignore[arg-type]


@pytest.mark.parametrize("body", [b'{"epoch": 5}', b"[1]", b"not json"])
async def test_a_config_epoch_bump_with_fields_it_does_not_take_is_a_400(
    make_node: MakeNode, body: bytes
) -> None:
    """It takes no fields: one it would ignore is refused, and nothing is bumped."""
    import aiohttp

    node = await make_node()
    async with aiohttp.ClientSession() as session, session.post(
            node.http_url + "/api/admin/bump-config-epoch", data=body,
            headers={"Content-Type": "application/json"}) as response:  # fmt: skip
        assert response.status == 400, await response.text()
        assert "error" in await response.json()
    for empty in (b"", b"{}", b"null"):  # what kcli and the CLI send
        async with aiohttp.ClientSession() as session, session.post(
                node.http_url + "/api/admin/bump-config-epoch", data=empty,
                headers={"Content-Type": "application/json"}) as response:  # fmt: skip
            assert response.status == 200, await response.text()
