"""``deferred_spool`` under attack: the moments a message held only in memory must be
written, and a removal that races its write.

* KumoMTA writes a held message whenever it has to wait in its scheduled queue, not only
  at a transient failure: one an aborted connection sent back (``abort-ready-q-conn``)
  or one scheduled for later at reception stayed in memory only, for as long as it
  waited, with its body pinned there.
* A held message delivered while it is being written (a transient failure's write, the
  write at shutdown) must not leave its record behind: it came back at the next start and
  was delivered again.

Real nodes on RocksDB spools in temp dirs, the gated sink of test_deferred_spool.py.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from kumocore.mail.message import Message
from kumocore.spool.base import MemorySpool
from kumocore.spool.store import MessageStore
from kumocore.testing.plugin import MakeNode
from tests.reception.test_deferred_spool import (
    POLICY,
    GatedSink,
    _spooled,
    _unsaved,
    _until_spooled,
    gated,
)

__all__ = ["gated"]  # the fixture, used by name

SINK_QUEUE = "unspecified->sink.kumocore.test@smtp_client"


class SlowSpool(MemorySpool):
    """A memory spool whose puts wait until ``release`` is set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.release = asyncio.Event()
        self.waiting = asyncio.Event()

    async def put(self, key: str, value: bytes) -> None:
        self.waiting.set()
        await self.release.wait()
        await super().put(key, value)


async def test_a_held_message_removed_while_it_is_being_written_leaves_no_record() -> None:
    data, meta = SlowSpool("data"), SlowSpool("meta")
    store = MessageStore(data, meta)
    message = Message("s@example.org", "r@example.com", b"Subject: x\r\n\r\nbody\r\n")
    store.defer(message)
    written = asyncio.ensure_future(store.save_meta(message))  # its first transient failure
    await data.waiting.wait()
    # Its retry was delivered meanwhile (or a shutdown's write overlaps its delivery).
    removed = asyncio.ensure_future(store.remove(message.id))
    await asyncio.sleep(0.01)
    data.release.set()
    meta.release.set()
    await asyncio.gather(written, removed)
    assert dict(meta.items) == {} and dict(data.items) == {}
    assert store.unsaved == 0


async def test_a_held_message_an_aborted_connection_sends_back_is_written(
    make_node: MakeNode, gated: GatedSink, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # KumoMTA's jitter is 0-59 s, and at 0 s the message is routed again at once with
    # no Delayed record (1 run in 60 failed so in CI): a wait it must be written for.
    monkeypatch.setattr("kumocore.queue.delays.drop_delay", lambda: 7)
    node = await make_node(POLICY, spool="rocksdb", esmtp={"deferred_spool": True}, sink=gated)
    await node.send(recipients="dropped@example.com")
    await gated.in_flight(1)
    [reception] = await node.wait_for("Reception")
    status, ready = await node.admin(
        "GET", f"/api/admin/inspect-ready-q/v1?queue_name={SINK_QUEUE}")
    assert status == 200, ready
    [connection] = ready["dispatchers"]
    status, _ = await node.admin("POST", "/api/admin/abort-ready-q-conn/v1", {
        "queue_name": SINK_QUEUE, "session_id": connection["session_id"]})
    assert status == 200
    [delayed] = await node.wait_for("Delayed")
    assert "DispatcherDrop" in delayed["response"]["content"]
    await _until_spooled(node, reception["id"])  # it waits (up to a minute): written


SCHEDULING_POLICY = """
local kumo = require 'kumo'
kumo.on('init', function() end)
kumo.on('smtp_server_message_received', function(msg)
  msg:set_due '%s'
end)
"""


async def test_a_held_message_due_later_is_written_when_it_starts_waiting(
    make_node: MakeNode,
) -> None:
    stamp = datetime.fromtimestamp(int(time.time() + 3600), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    node = await make_node(SCHEDULING_POLICY % stamp, spool="rocksdb",
                           esmtp={"deferred_spool": True})  # fmt: skip
    await node.send(recipients="later@example.com")
    [reception] = await node.wait_for("Reception")
    await _until_spooled(node, reception["id"])
    assert _unsaved(node) == 0 and await _spooled(node) == {reception["id"]}


SLOW_STOP_POLICY = """
local kumo = require 'kumo'
kumo.on('init', function() end)
kumo.on('shutdown_logging', function() kumo.time.sleep(30) end)  -- cut at its bound
"""


async def test_a_shutdown_that_runs_out_of_time_has_written_the_held_messages_first(
    make_node: MakeNode, gated: GatedSink,
) -> None:
    node = await make_node(SLOW_STOP_POLICY, spool="rocksdb", esmtp={"deferred_spool": True},
                           sink=gated)  # fmt: skip
    for n in range(3):
        await node.send(recipients=f"held{n}@example.com")
    await gated.in_flight(1)  # its delivery never ends; the others wait behind it
    receptions = await node.wait_for("Reception", count=3)
    # As ``kumocore serve --shutdown-timeout 3`` stops: the in-flight deliveries and the
    # policy's shutdown_logging take the whole time, and the stop is cut short.
    started = time.monotonic()
    try:
        async with asyncio.timeout(3.0):
            await node.server.stop(3.0)
    except TimeoutError:
        pass
    assert time.monotonic() - started < 4.0
    # Before, they were only written by store.close(), which the cut never reached.
    assert await _spooled(node) == {r["id"] for r in receptions}
