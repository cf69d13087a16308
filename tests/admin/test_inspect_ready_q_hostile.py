"""``inspect-ready-q`` of a path with thousands of connections, and hostile names for it
and for ``resolve-egress-path``: answers in bounded time, errors that say what is wrong."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from kumocore.queue.dispatchers import Dispatcher
from kumocore.testing.node import SINK_HOST
from kumocore.testing.plugin import MakeNode
from tests.admin.test_trace_smtp_server import OTHER, conversation
from tests.support.ticker import LoopTicker

INSPECT = "/api/admin/inspect-ready-q/v1"
RESOLVE = "/api/admin/resolve-egress-path/v1"
READY_Q = f"unspecified->{SINK_HOST}@smtp_client"
ESMTP = {"relay_hosts": ["127.0.0.0/8"]}
CONNECTIONS = 10_000


@pytest.mark.serial  # a latency bound (75 ms): measured on a machine not running other tests
async def test_listing_thousands_of_connections_does_not_stall_the_worker(
    make_node: MakeNode,
) -> None:
    node = await make_node(esmtp=ESMTP)
    await conversation(node.smtp_port, OTHER)  # the path exists once it has delivered
    await node.wait_for("Delivery")
    assert node.runtime.services is not None
    path = next(p for p in node.runtime.services.queues.paths.values()
                if p.key.name == READY_Q)  # fmt: skip
    # Stand-ins for connection tasks (this one): only listed, never run or aborted.
    task = asyncio.current_task()
    assert task is not None
    added = [Dispatcher(task) for _ in range(CONNECTIONS)]
    for dispatcher in added:
        path.dispatchers._open[dispatcher.session_id] = dispatcher
    gc.collect()  # what earlier tests left is not this request's cost
    try:
        async with LoopTicker() as ticker:
            await asyncio.sleep(0.01)
            status, view = await node.admin("GET", f"{INSPECT}?queue_name={READY_Q}")
    finally:
        for dispatcher in added:
            del path.dispatchers._open[dispatcher.session_id]
    assert status == 200, view
    # Every stand-in is listed (the connection that delivered may be listed too, or may
    # have closed meanwhile: it is not counted).
    listed = {entry["session_id"] for entry in view["dispatchers"]}
    assert {str(dispatcher.session_id) for dispatcher in added} <= listed
    # Described in one go, 10000 connections stalled the worker for 110 ms; a step at a
    # time, what is left (about 50 ms) is encoding the answer and this test reading it.
    stall = ticker.longest_overrun
    assert stall < 0.075, f"the event loop stalled for {stall:.3f} s"


async def test_hostile_names_get_a_4xx_that_says_what_is_wrong(make_node: MakeNode) -> None:
    node = await make_node(esmtp=ESMTP)
    cases = [
        (f"{RESOLVE}?domain={'a.' * 3000}com", 400, "longer than 253 octets"),
        (f"{RESOLVE}?domain=ex%00ample.com", 400, "not letters, digits and inner hyphens"),
        (f"{RESOLVE}?domain=%ff.example", 400, "not valid IDNA"),
        (f"{RESOLVE}?domain=[999.1.1.1]", 400, "not an IP address"),
        (f"{INSPECT}?queue_name=%00{'x' * 6000}", 404, "no such ready queue"),
        (f"{INSPECT}?queue_name={READY_Q}&include_scheduled_queues=%00", 400, "true or false"),
    ]
    for path, status, error in cases:
        started = time.monotonic()
        got, body = await node.admin("GET", path)
        assert (got, error in body["error"]) == (status, True), (path[:80], got, body)
        assert time.monotonic() - started < 0.5
    # A name in another script is a domain name (IDNA): resolved (the test DNS sends
    # every domain to the sink).
    status, body = await node.admin("GET", f"{RESOLVE}?domain=b%C3%BCcher.example")
    assert (status, body["domain"], body["queue_name"]) == (200, "bücher.example", READY_Q)
