"""msg:increment_num_attempts(), msg:set_force_sync(bool) and msg:save(): what each does in
kumocore (whose spool writes are always synced, and whose messages do not know their
spool)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kumocore.mail.message import Message
from tests.plugins.lua_policy.support import DATA, Recorder, load


def message() -> Message:
    return Message("alice@examplecorp.com", "bob@gmail.com", DATA, num_attempts=2)


def test_increment_num_attempts_adds_one_and_is_spooled_with_the_meta() -> None:
    msg = message()
    msg.increment_num_attempts()
    assert msg.num_attempts == 3
    assert Message.from_spool(msg.id, msg.meta_bytes(), DATA).num_attempts == 3


def test_set_force_sync_accepts_a_boolean_and_changes_nothing() -> None:
    msg = message()
    before = (msg.meta_bytes(), msg.get_data())
    msg.set_force_sync(True)
    msg.set_force_sync(False)
    assert (msg.meta_bytes(), msg.get_data()) == before
    with pytest.raises(TypeError, match="expects a boolean"):
        msg.set_force_sync("yes")  # type: ignore[arg-type]


def test_save_is_refused_as_not_supported_by_kumocore_yet() -> None:
    with pytest.raises(NotImplementedError, match=r"msg:save\(\) is not supported by kumocore"):
        message().save()


async def test_lua_spool_methods(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          msg:increment_num_attempts()
          msg:increment_num_attempts()
          msg:set_force_sync(true)
          local ok, err = pcall(function() msg:save() end)
          kumo.test.mark(ok)
          kumo.test.mark(tostring(err):find('msg:save() is not supported by kumocore yet', 1, true)
                         ~= nil)
        end)
    """, recorder=recorder)
    msg = message()
    await runtime.hooks.smtp_server_message_received(msg, {})
    assert recorder.marks == [False, True]
    assert msg.num_attempts == 4
