"""kumo.mpsc.define: a named queue between policy tasks — bounded when given a limit (send
waits, send_timeout fails, try_send answers false), one receiver at a time, closable."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from kumocore import PolicyError

from .support import Recorder, load


async def run(tmp_path: Path, source: str) -> list[Any]:
    recorder = Recorder()
    await load(tmp_path, source, recorder=recorder)
    return recorder.marks


async def test_a_bounded_queue_holds_at_most_its_limit(tmp_path: Path) -> None:
    marks = await run(
        tmp_path,
        """
        local kumo = require 'kumo'
        local q = kumo.mpsc.define('bounded', 2)
        kumo.test.mark({ q:try_send('a'), q:try_send({ 1, 2 }), q:try_send('c') })
        kumo.test.mark(q:len())
        local ok, err = pcall(q.send_timeout, q, 'd', 0.05)
        kumo.test.mark(ok)
        kumo.test.mark(tostring(err):find('is full') ~= nil)
        kumo.test.mark(q:recv_many(10))
        kumo.test.mark({ q:is_empty(), q:try_recv() == nil })
        -- A later define of the same name returns that queue, limit unchanged.
        local again = kumo.mpsc.define('bounded', 100)
        kumo.test.mark({ again:try_send(1), again:try_send(2), again:try_send(3) })
    """,
    )
    assert marks == [
        [True, True, False],
        2,
        False,
        True,
        ["a", [1, 2]],
        [True, True],
        [True, True, False],
    ]


async def test_send_waits_for_room_until_the_consumer_receives(tmp_path: Path) -> None:
    recorder = Recorder()
    _, policy = await load(
        tmp_path,
        """
        local kumo = require 'kumo'
        local function q() return kumo.mpsc.define('wait', 1) end
        kumo.on('producer', function()
          q():send('first')
          kumo.test.mark('sent first')
          q():send('second')  -- waits: the queue holds one item
          kumo.test.mark('sent second')
        end)
        kumo.on('consumer', function()
          kumo.test.mark('got ' .. q():recv())
          kumo.test.mark('got ' .. q():recv())
        end)
    """,
        recorder=recorder,
    )
    producer = asyncio.create_task(policy.call_custom_event("producer"))
    await recorder.wait_for_marks(1)
    await asyncio.sleep(0.05)
    assert recorder.marks == ["sent first"]  # the second send is still waiting
    await policy.call_custom_event("consumer")
    await asyncio.wait_for(producer, 2)
    assert set(recorder.marks) == {"sent first", "sent second", "got first", "got second"}
    assert recorder.marks.index("got first") < recorder.marks.index("sent second")


async def test_the_documented_task_consumes_batches_sent_by_handlers(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, policy = await load(
        tmp_path,
        """
        local kumo = require 'kumo'
        local function get_queue()
          return kumo.mpsc.define 'my-example-queue'
        end
        kumo.on('init', function()
          kumo.spawn_task { event_name = 'my.queue.task', args = {} }
        end)
        kumo.on('my.queue.task', function(args)
          local q = get_queue()
          while true do
            local batch = q:recv_many(128)
            if batch == nil then break end
            for idx, item in ipairs(batch) do kumo.test.mark(item) end
          end
          kumo.test.mark('closed')
        end)
        kumo.on('submit', function(item) get_queue():send(item) end)
        kumo.on('stop', function() get_queue():close() end)
    """,
        recorder=recorder,
    )
    await runtime.run_init()
    for i in range(3):
        await policy.call_custom_event("submit", f"item{i}")
    await policy.call_custom_event("stop")
    assert await recorder.wait_for_marks(4) == ["item0", "item1", "item2", "closed"]


async def test_a_closed_queue_refuses_sends_and_drains_then_answers_nil(tmp_path: Path) -> None:
    marks = await run(
        tmp_path,
        """
        local kumo = require 'kumo'
        local q = kumo.mpsc.define 'closing'
        q:send('kept')
        q:close()
        kumo.test.mark({ q:is_closed(), q:try_send('x') })
        kumo.test.mark(tostring(select(2, pcall(q.send, q, 'x'))):find('closed channel') ~= nil)
        kumo.test.mark({ q:recv(), q:recv() == nil, q:recv_many(5) == nil })
    """,
    )
    assert marks == [[True, False], True, ["kept", True, True]]


async def test_a_second_receiver_while_one_waits_is_an_error(tmp_path: Path) -> None:
    recorder = Recorder()
    _, policy = await load(
        tmp_path,
        """
        local kumo = require 'kumo'
        kumo.on('receive', function() return kumo.mpsc.define('single'):recv() end)
    """,
        recorder=recorder,
    )
    first = asyncio.create_task(policy.call_custom_event("receive"))
    await asyncio.sleep(0.02)
    with pytest.raises(PolicyError, match="single consumer"):
        await policy.call_custom_event("receive")
    first.cancel()


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ("kumo.mpsc.define('f'):send(function() end)", "cannot send a function"),
        ("kumo.mpsc.define('f'):send({ nested = { print } })", "cannot send a function"),
        ("kumo.mpsc.define('z', 0)", "non-zero"),
        ("kumo.mpsc.define(42)", "NAME must be a string"),
    ],
)
async def test_what_cannot_be_queued_is_refused(tmp_path: Path, call: str, error: str) -> None:
    with pytest.raises(PolicyError, match=error):
        await run(tmp_path, f"local kumo = require 'kumo'\n{call}")
