"""KumoMTA's ``shutdown_logging`` event on real nodes: called once as the node stops, after
its queues and before its log sinks, so a policy can close the ``kumo.mpsc`` queue its
``kumo.spawn_task`` logger drains and let that task finish; bounded, so an endless handler
cannot hang the stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kumocore import hookimpl
from kumocore.logs.record import LogRecord
from kumocore.policy.hooks import SHUTDOWN_LOGGING_TIMEOUT
from kumocore.testing.plugin import MakeNode

#: The docs' pattern (docs/reference/events/shutdown_logging.md in KumoMTA), with the
#: logger writing how much it drained when its loop ends.
LOGGER = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.spawn_task { event_name = 'logger', args = {} }
end)
kumo.on('logger', function(args)
  local q = kumo.mpsc.define 'queue'
  local drained = 0
  while true do
    local batch = q:recv_many(100)
    if not batch then
      local f = io.open('DONE', 'w')
      f:write('drained ' .. drained)
      f:close()
      return
    end
    drained = drained + #batch
  end
end)
kumo.on('smtp_server_message_received', function(msg)
  kumo.mpsc.define('queue'):send(msg:recipient().email)
end)
kumo.on('shutdown_logging', function()
  kumo.mpsc.define('queue'):close()
end)
"""

ENDLESS = """
local kumo = require 'kumo'
kumo.on('shutdown_logging', function()
  while true do kumo.sleep(0.05) end
end)
"""

FAILING = """
local kumo = require 'kumo'
kumo.on('shutdown_logging', function() error('the handler failed') end)
"""


class ClosingSink:
    """A log sink (a plugin's) that says whether the node closed it yet."""

    name = "test.closing"

    def __init__(self) -> None:
        self.closed = False
        self.records = 0

    async def write_batch(self, records: Sequence[LogRecord]) -> None:
        self.records += len(records)

    async def close(self) -> None:
        self.closed = True

    @hookimpl
    def kumo_register_log_sinks(self) -> list[ClosingSink]:
        return [self]


def _logger_task() -> asyncio.Task[Any]:
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == "kumo.spawn_task:logger"]
    return task


async def test_closing_the_loggers_queue_lets_its_task_finish_without_waiting_for_the_bound(
    make_node: MakeNode, tmp_path: Path
) -> None:
    done = tmp_path / "done.txt"
    node = await make_node(LOGGER.replace("DONE", str(done)))
    await node.send(recipients=["a@example.com", "b@example.com"])
    await node.wait_for("Reception", count=2)
    task = _logger_task()
    assert not task.done()  # waiting in recv_many
    started = time.monotonic()
    await node.stop()
    took = time.monotonic() - started
    await asyncio.wait_for(asyncio.shield(task), 1.0)  # it ends: no one cancels it
    assert not task.cancelled()
    assert done.read_text() == "drained 2"
    assert took < SHUTDOWN_LOGGING_TIMEOUT, f"the stop took {took:.2f} s"


async def test_an_endless_handler_is_given_up_on_and_the_stop_goes_on(
    make_node: MakeNode,
) -> None:
    sink = ClosingSink()
    node = await make_node(ENDLESS, plugins=[sink])
    await node.send(recipients="a@example.com")
    started = time.monotonic()
    await node.stop(timeout=10.0)
    took = time.monotonic() - started
    assert SHUTDOWN_LOGGING_TIMEOUT <= took < SHUTDOWN_LOGGING_TIMEOUT + 2.0, took
    # The stop went on past the handler: the log sinks were flushed and closed after it.
    assert sink.closed and sink.records >= 1


async def test_a_failing_handler_does_not_stop_the_stop(make_node: MakeNode) -> None:
    sink = ClosingSink()
    node = await make_node(FAILING, plugins=[sink])
    started = time.monotonic()
    await node.stop()
    assert time.monotonic() - started < SHUTDOWN_LOGGING_TIMEOUT
    assert sink.closed


class Order:
    """A Python policy noting when each stop event runs, and what was still open then."""

    def __init__(self, sink: ClosingSink) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.sink = sink
        self.sink_closed_at_shutdown_logging: bool | None = None
        self.node: Any = None

    @hookimpl
    def kumo_shutdown_logging(self) -> None:
        listeners = list(self.node.server.listeners)
        self.calls.append(("shutdown_logging", bool(listeners)))
        self.sink_closed_at_shutdown_logging = self.sink.closed

    @hookimpl
    def kumo_shutdown(self) -> None:
        self.calls.append(("shutdown", bool(self.node.server.listeners)))


async def test_a_python_policy_gets_it_once_after_the_listeners_and_before_the_log_sinks(
    make_node: MakeNode,
) -> None:
    sink = ClosingSink()
    order = Order(sink)
    node = await make_node(plugins=[sink, order])
    order.node = node
    await node.stop()
    assert order.calls == [("shutdown_logging", False), ("shutdown", False)]
    assert order.sink_closed_at_shutdown_logging is False
    assert sink.closed
