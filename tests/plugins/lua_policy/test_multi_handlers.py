"""Several Lua handlers of one of KumoMTA's ``Multiple`` events, called as KumoMTA calls
them (``CallbackSignature::call``): in registration order, on to the next handler only
after one that returned no value; any returned value, ``nil`` included, ends the call and
is the answer. (tests/queue/test_multi_handler_events.py: the queue events on a node.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from kumocore.config import QueueConfig
from kumocore.mail.message import Message

from .support import DATA, Recorder, load

QUEUE_CONFIG = """\
    local kumo = require 'kumo'
    kumo.on('get_queue_config', function(domain)
      kumo.test.mark('first')
      {first}
    end)
    kumo.on('get_queue_config', function(domain)
      kumo.test.mark('second')
      return kumo.make_queue_config {{ egress_pool = 'second-pool' }}
    end)
"""


@pytest.mark.parametrize("first", ["", "return", "if domain == 'x' then return 1 end"])
async def test_a_lookup_handler_without_a_value_lets_the_next_answer(
    tmp_path: Path, first: str
) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, QUEUE_CONFIG.format(first=first), recorder=recorder)
    config = await runtime.hooks.get_queue_config("example.com", None, None, None)
    assert isinstance(config, QueueConfig) and config.egress_pool == "second-pool"
    assert recorder.marks == ["first", "second"]


async def test_a_lookup_handler_returning_nil_ends_the_call(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, QUEUE_CONFIG.format(first="return nil"),
                            recorder=recorder)  # fmt: skip
    config = await runtime.hooks.get_queue_config("example.com", None, None, None)
    # The policy answers nothing: kumocore's built-in default applies (not second-pool).
    assert isinstance(config, QueueConfig) and config.egress_pool != "second-pool"
    assert recorder.marks == ["first"]


async def test_should_enqueue_log_record_nil_from_the_first_handler_means_no(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    runtime, _ = await load(
        tmp_path,
        """\
        local kumo = require 'kumo'
        kumo.on('should_enqueue_log_record', function(msg, hook_name)
          kumo.test.mark('first ' .. hook_name)
          if hook_name == 'quiet' then return nil end
        end)
        kumo.on('should_enqueue_log_record', function(msg, hook_name)
          kumo.test.mark('second ' .. hook_name)
          return true
        end)
    """,
        recorder=recorder,
    )
    message = Message("a@examplecorp.com", "b@gmail.com", DATA)
    assert await runtime.hooks.should_enqueue_log_record(message, "quiet") is False
    assert await runtime.hooks.should_enqueue_log_record(message, "loud") is True
    assert recorder.marks == ["first quiet", "first loud", "second loud"]


@pytest.mark.parametrize(
    ("stop", "expected"), [("", ["one", "two"]), ("return nil", ["one"]), ("return true", ["one"])]
)
async def test_validate_config_handlers_run_until_one_returns_a_value(
    tmp_path: Path, stop: str, expected: list[str]
) -> None:
    recorder = Recorder()
    runtime, _ = await load(
        tmp_path,
        f"""\
        local kumo = require 'kumo'
        kumo.on('validate_config', function() kumo.test.mark('one') {stop} end)
        kumo.on('validate_config', function() kumo.test.mark('two') end)
    """,
        recorder=recorder,
    )
    await runtime.hooks.validate_config()
    assert recorder.marks == expected


async def test_two_log_hooks_helpers_and_the_policys_own_queue_config_all_get_their_turn(
    tmp_path: Path,
) -> None:
    # The helper's handlers must not `return nil` for another hook's records or another
    # domain's queue: that would end the call before the next handler (KumoMTA's helper
    # uses a bare return).
    runtime, _ = await load(
        tmp_path,
        """\
        local kumo = require 'kumo'
        local log_hooks = require 'policy-extras.log_hooks'
        log_hooks:new_json { name = 'one', url = 'http://127.0.0.1:9/one' }
        log_hooks:new_json { name = 'two', url = 'http://127.0.0.1:9/two' }
        kumo.on('get_queue_config', function(domain)
          return kumo.make_queue_config { max_age = '1h' }
        end)
    """,
    )
    record = {"type": "Delivery", "reception_protocol": "ESMTP"}
    message = Message("a@examplecorp.com", "b@gmail.com", DATA, meta={"log_record": record})
    assert await runtime.hooks.should_enqueue_log_record(message, "two") is True
    assert message.meta["queue"] == "two.log_hook"
    config = await runtime.hooks.get_queue_config("example.com", None, None, None)
    assert isinstance(config, QueueConfig) and config.max_age == 3600
    hook_queue = await runtime.hooks.get_queue_config("two.log_hook", None, None, None)
    assert isinstance(hook_queue, QueueConfig) and hook_queue.max_age != 3600
