"""KumoMTA's log submission metrics on ``/metrics`` of a real node, by KumoMTA's
``logger`` names (``dir-<log_dir>``, ``hook-<name>``): ``log_submit_latency``,
``log_submit_full`` and ``log_hook_backlog_count``; and, on the dispatcher, a reception
held for room counted and timed per lane it waited for."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kumocore.logs.dispatch import LogDispatcher
from kumocore.logs.record import RecordType
from kumocore.logs.sink import sink_options
from kumocore.testing.plugin import MakeNode
from tests.core.logs.fakes import RecordingSink, record
from tests.support.metric_samples import scrape, series

#: Local logs, and a log hook that holds one record at most and queues none.
POLICY = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.configure_local_logs { log_dir = '{logs}' }
  kumo.configure_log_hook { name = 'tight', back_pressure = 1 }
end)
kumo.on('should_enqueue_log_record', function(msg, hook_name) return false end)
"""



async def test_each_logger_times_its_records_and_counts_them_when_its_queue_was_full(
    make_node: MakeNode, tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    node = await make_node(POLICY.replace("{logs}", str(logs)))
    # Two messages in one transaction: their Reception records are handed over together,
    # so the second finds the hook's one place taken.
    assert await node.send(recipients=["a@example.com", "b@example.com"]) == {}
    await node.wait_for("Delivery", count=2)
    values = await scrape(node)
    counts = series(values, "log_submit_latency_count")
    assert counts[(f"dir-{logs}",)] == counts[("hook-tight",)] >= 4  # 2 Receptions, 2 Deliveries
    assert counts[("kumocore.testing",)] == counts[("hook-tight",)]  # the test's own sink
    full = series(values, "log_submit_full")
    assert full[(f"dir-{logs}",)] == 0
    assert full[("hook-tight",)] >= 1
    # The hook's one queue is its lane: its back-pressure is that lane being full.
    assert series(values, "log_hook_backlog_count") == {("tight",): full[("hook-tight",)]}


async def test_a_reception_held_for_room_counts_as_full_and_its_wait_is_timed() -> None:
    gate = asyncio.Event()
    slow = RecordingSink("slow", gate=gate, buffer_size=1)
    fast = RecordingSink("fast")
    dispatcher = LogDispatcher([slow, fast], batch_latency=0)
    await dispatcher.start()
    dispatcher.submit(record())
    await asyncio.sleep(0.01)  # the slow sink takes it and blocks on the gate
    asyncio.get_running_loop().call_later(0.03, gate.set)
    assert await dispatcher.room(timeout=2.0)
    slow_lane, fast_lane = dispatcher.lanes
    assert (slow_lane.full, fast_lane.full) == (1, 0)
    # One append each, plus the slow lane's wait (at least the 30 ms it was held).
    assert (slow_lane.submit_latency.count, fast_lane.submit_latency.count) == (2, 1)
    assert slow_lane.submit_latency.sum >= 0.03
    await dispatcher.close()


async def test_a_shed_rejection_counts_as_full_but_is_not_timed() -> None:
    sink = RecordingSink("s", gate=asyncio.Event(), buffer_size=1)
    dispatcher = LogDispatcher([sink])  # not started: the buffer only fills
    dispatcher.submit(record())
    dispatcher.submit(record(RecordType.Rejection))
    dispatcher.submit(record())  # about a message: in all the same
    [lane] = dispatcher.lanes
    assert (lane.full, lane.counts["shed"], len(lane.buffer)) == (2, 1, 2)
    assert lane.submit_latency.count == 2
    assert dispatcher.submit_latency.series == {"s": lane.submit_latency}


def test_a_sink_without_a_logger_name_is_labelled_by_its_name() -> None:
    options = sink_options(RecordingSink("plain"), buffer_size=10, batch_size=10)
    assert options.logger_name == "plain"


def test_a_malformed_logger_name_is_refused_by_sink_name() -> None:
    sink = RecordingSink("odd", logger_name="")
    with pytest.raises(TypeError, match="'odd': logger_name"):
        sink_options(sink, buffer_size=10, batch_size=10)
