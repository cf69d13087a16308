"""A connection an operator aborts (``abort-ready-q-conn``) while it holds a message, on a
real node read back from its local log files: as KumoMTA's dispatcher drop does, the
message goes back to its scheduled queue — ``requeue_message`` first, then due in 0 to 59
whole seconds, with a ``Delayed`` record ``Context: DispatcherDrop`` — no attempt counted
and no outcome record for the cut attempt."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kumocore.mail.internal_responses import chrono_utc
from kumocore.queue import delays as delays_module
from tests.queue.delayed_support import assert_delayed_record, policy, records, start
from tests.queue.delayed_support import wait_for_records as wait_for_log
from tests.support.holding_sink import HoldingSink

ABORT = "/api/admin/abort-ready-q-conn/v1"
SEEN = """
kumo.on('requeue_message', function(msg, response, context, increment, delay)
  msg:set_meta('seen', string.format('%s|%s|%s|%s', response, table.concat(context, ','),
    tostring(increment), tostring(delay)))
end)"""


@pytest.fixture
async def holding_sink() -> AsyncIterator[HoldingSink]:
    sink = await HoldingSink().start()
    yield sink
    sink.handler.release.set()
    await sink.stop()


async def test_an_aborted_connection_gives_its_message_back_with_a_delayed_record(
    tmp_path: Path, holding_sink: HoldingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delays_module, "drop_delay", lambda: 7)  # KumoMTA's jitter: 0..59
    logs = tmp_path / "logs"
    node = await start(tmp_path, policy(logs, extra=SEEN), sink=holding_sink)
    try:
        await node.send(recipients="cut@example.com")
        await asyncio.wait_for(holding_sink.handler.holding.wait(), 10)
        queues = node.runtime.services.queues
        [path] = queues.paths.values()
        [connection] = path.dispatchers
        status, answer = await node.admin(
            "POST", ABORT, {"queue_name": path.key.name, "session_id": str(connection.session_id)}
        )
        assert status == 200, answer
        aborted_at = time.time()
        [record] = await wait_for_log(logs, "Delayed")
        [waiting] = queues.queued.values()
    finally:
        await node.stop()
    due = waiting.due
    assert due is not None and 6.9 <= due - aborted_at <= 7.5
    assert_delayed_record(record, context="DispatcherDrop", due=due, at=chrono_utc(due),
                          queue="example.com")  # fmt: skip
    assert record["num_attempts"] == 0 and waiting.message.num_attempts == 0
    assert record["meta"]["seen"] == (
        "451 4.4.1 KumoMTA internal: returning message to scheduled queue|DispatcherDrop|false|nil"
    )
    assert len(path) == 0  # not back in the ready queue
    assert records(logs, "TransientFailure") == records(logs, "Delivery") == []


async def test_a_message_given_back_with_no_wait_goes_out_at_once_unlogged(
    tmp_path: Path, holding_sink: HoldingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delays_module, "drop_delay", lambda: 0)
    logs = tmp_path / "logs"
    node = await start(tmp_path, policy(logs), sink=holding_sink)
    try:
        await node.send(recipients="cut@example.com")
        await asyncio.wait_for(holding_sink.handler.holding.wait(), 10)
        [path] = node.runtime.services.queues.paths.values()
        [connection] = path.dispatchers
        status, _ = await node.admin(
            "POST", ABORT, {"queue_name": path.key.name, "session_id": str(connection.session_id)}
        )
        assert status == 200
        [delivery] = await wait_for_log(logs, "Delivery")
    finally:
        await node.stop()
    # Due at once: KumoMTA routes it again without a Delayed record.
    assert delivery["num_attempts"] == 0
    assert records(logs, "Delayed") == records(logs, "TransientFailure") == []
    assert [m.recipient for m in holding_sink.messages] == ["cut@example.com"]
