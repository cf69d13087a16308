"""A message already in a ready queue when an operator suspends its scheduled queue, on a
real node read back from its local log files: as in KumoMTA, the connection that takes it
does not send it but gives it the suspended queue's ``TransientFailure`` — site: the ready
queue, no pool or source — counts an attempt and sends it back to wait for its retry (no
``Delayed`` record: the TransientFailure explains the wait)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from kumocore.testing.node import SINK_HOST
from tests.queue.delayed_support import policy, records, start, wait_for_records

READY_Q = f"unspecified->{SINK_HOST}@smtp_client"


async def test_a_connection_defers_a_message_whose_scheduled_queue_was_suspended(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    node = await start(tmp_path, policy(logs))
    try:
        status, held = await node.admin(
            "POST",
            "/api/admin/suspend-ready-q/v1",
            {"name": READY_Q, "reason": "hold", "duration": "1h"},
        )
        assert status == 200, held
        await node.send(recipients="queued@example.com")  # into the held ready queue
        queues = node.runtime.services.queues
        await wait_for_records(logs, "Reception")
        await until(lambda: len(queues.paths) == 1 and len(next(iter(queues.paths.values()))) == 1)
        await node.hold("queue paused")  # the scheduled queue example.com is suspended now
        status, _ = await node.admin("DELETE", "/api/admin/suspend-ready-q/v1", {"id": held["id"]})
        assert status == 200
        [failure] = await wait_for_records(logs, "TransientFailure")
        [waiting] = queues.queued.values()
    finally:
        await node.stop()
    assert failure["recipient"] == "queued@example.com"
    assert failure["response"] == {
        "code": 451,
        "enhanced_code": {"class": 4, "subject": 4, "detail": 4},
        "content": "KumoMTA internal: scheduled queue is suspended: queue paused",
        "command": None,
    }
    assert (failure["queue"], failure["site"]) == ("example.com", READY_Q)
    assert failure["egress_pool"] is None and failure["egress_source"] is None
    assert failure["peer_address"] is None
    assert waiting.due is not None and waiting.message.num_attempts == 1
    assert node.sink is not None and node.sink.messages == []
    assert records(logs, "Delayed") == []


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
