"""A queue rate's delay survives a restart when it is a minute or longer (the due time is
saved to the spool, as a retry time is); a shorter one is not saved, nor the jitter
``throttle_insert_ready_queue`` leaves (as in KumoMTA, at most 59 s). Real nodes with a
RocksDB spool in a temp dir, restarted with a policy that no longer throttles, so that
only the spooled due time can hold the message back."""

from __future__ import annotations

import time
from pathlib import Path

from kumocore.queue.delays import SAVE_FROM
from kumocore.testing import Node
from tests.queue.delayed_support import future, policy, start, wait_for_records

THROTTLE = """
kumo.on('throttle_insert_ready_queue', function(msg)
  msg:set_due '{stamp}'
end)"""


async def _restart_unthrottled(tmp_path: Path, logs: Path) -> Node:
    return await start(tmp_path, policy(logs), spool="rocksdb")


async def test_a_queue_rate_delay_of_an_hour_survives_a_restart(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    due = await _queue_rate_delay(tmp_path, logs, "1/h")
    assert due - time.time() > 3500
    again = await _restart_unthrottled(tmp_path, logs)
    try:
        [record] = again.runtime.services.queues.queued.values()
        assert record.due == due  # still waiting for the throttle's hour, not due at once
    finally:
        await again.stop()


async def _queue_rate_delay(tmp_path: Path, logs: Path, rate: str) -> float:
    """Send two messages through a queue whose rate lets the first go; the second's due."""
    node = await start(tmp_path, policy(logs, queue=f"max_message_rate = '{rate}'"),
                       spool="rocksdb")  # fmt: skip
    try:
        await node.send(recipients="first@example.com")
        assert node.sink is not None
        await node.sink.wait_for(1)
        await node.send(recipients="second@example.com")
        await wait_for_records(logs, "Delayed")
        [waiting] = [q for q in node.runtime.services.queues.queued.values() if q.due]
        assert waiting.due is not None
        return waiting.due
    finally:
        await node.stop()


async def test_a_queue_rate_delay_shorter_than_a_minute_is_not_saved(tmp_path: Path) -> None:
    # 1/20s: the second message waits about 20 s, under the bound (SAVE_FROM): not written,
    # so the restarted node (no rate) sends it at once.
    logs = tmp_path / "logs"
    due = await _queue_rate_delay(tmp_path, logs, "1/20s")
    assert due - time.time() < SAVE_FROM
    again = await _restart_unthrottled(tmp_path, logs)
    try:
        assert again.sink is not None
        await again.sink.wait_for(1)
    finally:
        await again.stop()


async def test_a_throttle_insert_ready_queue_delay_is_jittered_and_so_never_saved(
    tmp_path: Path,
) -> None:
    # KumoMTA re-times the message within a minute whatever due time the event set.
    _, stamp = future(3600)
    logs = tmp_path / "logs"
    node = await start(tmp_path, policy(logs, extra=THROTTLE.format(stamp=stamp)),
                       spool="rocksdb")  # fmt: skip
    try:
        await node.send(recipients="throttled@example.com")
        await wait_for_records(logs, "Delayed")
    finally:
        await node.stop()
    again = await _restart_unthrottled(tmp_path, logs)
    try:
        assert again.sink is not None
        await again.sink.wait_for(1)
    finally:
        await again.stop()
