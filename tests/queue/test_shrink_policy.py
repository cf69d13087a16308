"""A queue's ``shrink_policy`` decides whether a deferred message's body leaves memory
when it goes back to wait (KumoMTA's ``make_queue_config`` option). Real nodes with a
RocksDB spool (the memory spool keeps bodies in memory by nature); a queue rate of one an
hour holds the second message back about an hour, through the same path a retry takes."""

from __future__ import annotations

from pathlib import Path

import pytest

from kumocore.mail.message import Message
from tests.queue.delayed_support import policy, start, wait_for_records


async def _held_message(tmp_path: Path, shrink: str) -> Message:
    """The second of two messages to a queue limited to one an hour, once it waits."""
    logs = tmp_path / "logs"
    queue = "max_message_rate = '1/h', " + shrink
    node = await start(tmp_path, policy(logs, queue=queue), spool="rocksdb")
    try:
        await node.send(recipients="first@example.com")
        assert node.sink is not None
        await node.sink.wait_for(1)
        await node.send(recipients="second@example.com")
        await wait_for_records(logs, "Delayed")
        [held] = [q for q in node.runtime.services.queues.queued.values() if q.due]
        return held.message
    finally:
        await node.stop()


@pytest.mark.parametrize(
    ("shrink", "kept"),
    [
        ("", False),  # KumoMTA's default, ShrinkDataAndMeta
        ("shrink_policy = { { interval = '0s', policy = 'ShrinkData' } }", False),
        ("shrink_policy = { { interval = '0s', policy = 'NoShrink' } }", True),
        # The last entry the wait (about an hour) reaches decides.
        ("shrink_policy = { { interval = '0s', policy = 'NoShrink' },"
         " { interval = '30m', policy = 'ShrinkData' } }", False),
        ("shrink_policy = { { interval = '0s', policy = 'ShrinkData' },"
         " { interval = '30m', policy = 'NoShrink' }, { interval = '2h', policy = 'ShrinkData' } }",
         True),
    ],
)
async def test_the_last_shrink_policy_entry_the_wait_reaches_decides_if_the_body_stays(
    tmp_path: Path, shrink: str, kept: bool,
) -> None:
    message = await _held_message(tmp_path, shrink)
    assert (message.data != b"") is kept
