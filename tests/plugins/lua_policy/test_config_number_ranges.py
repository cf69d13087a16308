"""Lua numbers out of a config field's Rust range (``2^70`` is a float in Lua, ``1 << 63``
wraps to a negative integer) are refused when the policy makes the config, naming the
field, as KumoMTA's serde does."""

from __future__ import annotations

from pathlib import Path

from .support import Recorder, load


async def test_out_of_range_numbers_from_lua_are_refused_naming_the_field(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    await load(
        tmp_path,
        """\
        local kumo = require 'kumo'
        local function err(f, options)
          local ok, e = pcall(f, options)
          kumo.test.mark(ok and 'accepted' or tostring(e))
        end
        err(kumo.make_egress_path, { max_ready = 2^70 })
        err(kumo.make_egress_path, { max_ready = 1 << 63 })
        err(kumo.make_egress_path, { max_ready = 1.5 })
        err(kumo.make_egress_path, { connection_limit = 2^70 })
        err(kumo.make_egress_path, { max_message_rate = '18446744073709551616/s' })
        err(kumo.make_queue_config, { max_message_rate = '1/18446744073709551616s' })
        err(kumo.make_egress_source, { name = 's', remote_port = 65536 })
        err(kumo.make_egress_path, { max_ready = math.maxinteger })
    """,
        recorder=recorder,
    )
    marks = recorder.marks
    assert all("accepted" not in mark for mark in marks[:-1]), marks
    assert "'max_ready' in kumo.make_egress_path: expected a whole number" in marks[0]
    assert "'max_ready'" in marks[1] and "-9223372036854775808" in marks[1]
    assert "'max_ready'" in marks[2] and "1.5" in marks[2]
    assert "'connection_limit' in kumo.make_egress_path" in marks[3]
    assert "'max_message_rate' in kumo.make_egress_path" in marks[4]
    assert "too large" in marks[4]
    assert "'max_message_rate' in kumo.make_queue_config" in marks[5]
    assert "'remote_port' in kumo.make_egress_source" in marks[6]
    assert marks[7] == "accepted"  # 2^63-1 fits a usize
