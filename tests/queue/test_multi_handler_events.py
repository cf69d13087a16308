"""KumoMTA's ``Multiple`` events with several Lua handlers, on a real node.

``throttle_insert_ready_queue`` and ``requeue_message`` keep every handler a policy
registers, as KumoMTA declares them (``declare_event! ... Multiple``). Its caller
(``CallbackSignature::call``) runs them in registration order and goes on to the next one
only after a handler that returned no value at all: any ``return`` — ``return nil``
included — ends the call. ``requeue_message``'s ``delay`` is a ``kumo.time`` TimeDelta.
Python plugins implementing these events follow the same rule, None standing for "no
value" (kumocore.hookspecs.UNTIL_A_VALUE).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kumocore import hookimpl
from kumocore.mail.message import Message
from kumocore.policy.plugins import register_plugin
from tests.queue.delayed_support import policy, start, wait_for_records

#: Two handlers per event; each appends its name to the meta ``seen``; ``{stop}`` ends
#: the first handler of each event.
HANDLERS = """
local function mark(msg, what)
  local seen = msg:get_meta('seen')
  msg:set_meta('seen', (seen and (seen .. ',') or '') .. what)
end

kumo.on('throttle_insert_ready_queue', function(msg)
  mark(msg, 'throttle1')
  {stop}
end)
kumo.on('throttle_insert_ready_queue', function(msg)
  mark(msg, 'throttle2')
end)

kumo.on('requeue_message', function(msg, response, context, increment, delay)
  mark(msg, string.format('requeue1:%d', delay.seconds))
  {stop}
end)
kumo.on('requeue_message', function(msg, response, context, increment, delay)
  mark(msg, 'requeue2:' .. delay.human)
end)
"""


async def _run(tmp_path: Path, stop: str) -> tuple[str, str]:
    """The ``seen`` meta of the first message's Delivery record (what its
    throttle_insert_ready_queue handlers marked) and of the second's Delayed record: the
    queue's rate holds it back before that event, after requeue_message (delay 1 h)."""
    logs = tmp_path / "logs"
    node = await start(tmp_path, policy(logs, queue="max_message_rate = '1/h'",
                                        extra=HANDLERS.replace("{stop}", stop)))  # fmt: skip
    try:
        await node.send(recipients="first@example.com")
        [delivery] = await wait_for_records(logs, "Delivery")
        await node.send(recipients="second@example.com")
        [delayed] = await wait_for_records(logs, "Delayed")
    finally:
        await node.stop()
    return delivery["meta"]["seen"], delayed["meta"]["seen"]


async def test_handlers_without_a_return_all_run_in_registration_order(
    tmp_path: Path,
) -> None:
    throttle, requeue = await _run(tmp_path, stop="")
    assert throttle == "throttle1,throttle2"
    # delay: the rate throttle's wait as a TimeDelta (seconds, humantime form)
    assert requeue == "requeue1:3600,requeue2:1h"


@pytest.mark.parametrize("stop", ["return nil", "return false", "return 'done'"])
async def test_a_handler_that_returns_anything_ends_the_call(tmp_path: Path, stop: str) -> None:
    throttle, requeue = await _run(tmp_path, stop=stop)
    assert throttle == "throttle1"
    assert requeue == "requeue1:3600"


class PythonThrottle:
    """A plugin's throttle_insert_ready_queue that notes its call and answers ``answer``."""

    def __init__(self, name: str, seen: list[str], answer: object) -> None:
        self.name, self.seen, self.answer = name, seen, answer

    @hookimpl
    def kumo_throttle_insert_ready_queue(self, message: Message) -> object:
        self.seen.append(self.name)
        return self.answer


@pytest.mark.parametrize(
    ("answer", "expected"), [(None, ["later", "earlier"]), (True, ["later"]), (False, ["later"])]
)
async def test_python_implementations_run_until_one_returns_a_value(
    make_bench: Any, answer: object, expected: list[str]
) -> None:
    bench = await make_bench()
    seen: list[str] = []
    register_plugin(bench.runtime.pm, PythonThrottle("earlier", seen, None), "earlier")
    # pluggy calls the plugin registered last first
    register_plugin(bench.runtime.pm, PythonThrottle("later", seen, answer), "later")
    await bench.inject("a@example.com")
    await bench.wait_for_records("Delivery", 1)
    assert seen == expected
