"""An operator aborts a connection holding a message while the node shuts down, on a real
node with a durable spool: the message given back is neither lost nor logged twice, and
after the restart it is delivered once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kumocore.queue import delays as delays_module
from tests.queue.delayed_support import policy, records, start
from tests.queue.delayed_support import wait_for_records as wait_for_log
from tests.support.holding_sink import HoldingSink

ABORT = "/api/admin/abort-ready-q-conn/v1"


@pytest.fixture
async def holding_sink() -> AsyncIterator[HoldingSink]:
    sink = await HoldingSink().start()
    yield sink
    sink.handler.release.set()
    await sink.stop()


@pytest.mark.parametrize("jitter", [0, 7])
async def test_a_message_given_back_as_the_node_stops_is_kept_and_delivered_once(
    tmp_path: Path, holding_sink: HoldingSink, monkeypatch: pytest.MonkeyPatch, jitter: int
) -> None:
    monkeypatch.setattr(delays_module, "drop_delay", lambda: jitter)
    logs = tmp_path / "logs"
    text = policy(logs)
    node = await start(tmp_path, text, spool="rocksdb", sink=holding_sink)
    try:
        await node.send(recipients="cut@example.com")
        await asyncio.wait_for(holding_sink.handler.holding.wait(), 10)
        [path] = node.runtime.services.queues.paths.values()
        [connection] = path.dispatchers
        status, _ = await node.admin(
            "POST", ABORT, {"queue_name": path.key.name, "session_id": str(connection.session_id)}
        )
        assert status == 200
    finally:
        await node.stop()  # at once: the give-back is still on its way
    again = await start(tmp_path, text, spool="rocksdb")
    try:
        queues = again.runtime.services.queues
        assert again.sink is not None
        await again.sink.wait_for(1)
        await wait_for_log(logs, "Delivery")
        await asyncio.sleep(0.3)
        assert len(queues.queued) == 0
    finally:
        await again.stop()
    assert [m.recipient for m in again.sink.messages] == ["cut@example.com"]
    assert holding_sink.messages == []  # the cut transaction delivered nothing
    assert len(records(logs, "Delivery")) == 1
    assert len(records(logs, "Delayed")) <= 1 and records(logs, "TransientFailure") == []
