"""A Lua string that is not valid UTF-8 passed to a function that takes text is a clear
error naming the function and the argument (KumoMTA's Rust functions take ``String`` and
fail converting it), not lupa's bare ``UnicodeDecodeError``; functions that take bytes
(digests, encoders) still take it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kumocore import PolicyError
from kumocore.mail.message import Message

from .support import Recorder, load

CONVERSION = "error converting Lua string to String (invalid utf-8 sequence at byte"

PRELUDE = """\
    local kumo = require 'kumo'
    local bad = '\\xff\\xfe'
    local function err(f, ...)
      local ok, e = pcall(f, ...)
      kumo.test.mark(ok and 'no error' or tostring(e))
    end
"""


async def _marks(tmp_path: Path, body: str) -> list[str]:
    recorder = Recorder()
    await load(tmp_path, PRELUDE + body, recorder=recorder)
    return [str(mark) for mark in recorder.marks]


async def test_text_functions_name_the_function_and_the_argument(tmp_path: Path) -> None:
    marks = await _marks(
        tmp_path,
        """\
        err(kumo.string.split, bad, ',')
        err(kumo.string.split, 'a,b', bad)
        err(kumo.serde.json_parse, bad)
        err(kumo.string.trim, 'ok' .. bad)
        err(kumo.dns.lookup_mx, bad)
    """,
    )
    assert marks == [
        f"kumo.string.split: bad argument #1: {CONVERSION} 0)",
        f"kumo.string.split: bad argument #2: {CONVERSION} 0)",
        f"kumo.serde.json_parse: bad argument #1: {CONVERSION} 0)",
        f"kumo.string.trim: bad argument #1: {CONVERSION} 2)",
        f"kumo.dns.lookup_mx: bad argument #1: {CONVERSION} 0)",
    ]


async def test_a_string_inside_a_table_argument_is_named_by_its_field(tmp_path: Path) -> None:
    marks = await _marks(
        tmp_path,
        """\
        err(kumo.make_queue_config, { egress_pool = bad })
        err(kumo.serde.json_encode, { a = { b = { 'fine', bad } } })
        err(kumo.serde.json_encode, { [bad] = 1 })
    """,
    )
    assert marks == [
        f"kumo.make_queue_config: bad argument #1 (egress_pool): {CONVERSION} 0)",
        f"kumo.serde.json_encode: bad argument #1 (a.b[2]): {CONVERSION} 0)",
        f"kumo.serde.json_encode: bad argument #1 (a key): {CONVERSION} 0)",
    ]


async def test_message_methods_count_arguments_without_self(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(
        tmp_path,
        PRELUDE
        + """\
        kumo.on('smtp_server_message_received', function(msg)
          err(msg.set_meta, msg, 'key', bad)
          err(msg.append_header, msg, bad, 'value')
          err(msg.get_first_named_header_value, msg, bad)
        end)
    """,
        recorder=recorder,
    )
    msg = Message("a@example.com", "b@example.com", b"Subject: x\r\n\r\nbody\r\n")
    await runtime.hooks.smtp_server_message_received(msg, {})
    assert recorder.marks == [
        f"msg:set_meta: bad argument #2: {CONVERSION} 0)",
        f"msg:append_header: bad argument #1: {CONVERSION} 0)",
        f"msg:get_first_named_header_value: bad argument #1: {CONVERSION} 0)",
    ]


async def test_an_uncaught_binary_argument_names_the_function_and_the_line(
    tmp_path: Path,
) -> None:
    with pytest.raises(PolicyError) as info:
        await load(
            tmp_path,
            """\
            local kumo = require 'kumo'
            kumo.string.split('\\xff', ',')
        """,
        )
    text = str(info.value)
    assert "policy.lua:2" in text and f"kumo.string.split: bad argument #1: {CONVERSION}" in text
    assert "codec" not in text


async def test_functions_taking_bytes_still_take_binary_strings(tmp_path: Path) -> None:
    marks = await _marks(
        tmp_path,
        """\
        kumo.test.mark(kumo.digest.sha256(bad).hex)
        kumo.test.mark(kumo.encode.base64_encode(bad))
        kumo.test.mark(kumo.string.trim('  caf\\u{e9}  '))
    """,
    )
    assert marks == [hashlib.sha256(b"\xff\xfe").hexdigest(), "//4=", "café"]


async def test_starts_with_and_ends_with_compare_bytes_as_kumomta_does(tmp_path: Path) -> None:
    # KumoMTA's kumo.string.starts_with/ends_with take mlua::String, i.e. any bytes.
    recorder = Recorder()
    await load(
        tmp_path,
        PRELUDE
        + """\
        local s = kumo.string
        kumo.test.mark(s.starts_with(bad .. 'tail', bad))
        kumo.test.mark(s.ends_with('head' .. bad, bad))
        kumo.test.mark(s.starts_with(bad, 'x'))
        kumo.test.mark(s.ends_with('caf\\u{e9}', '\\xa9'))
        kumo.test.mark(s.starts_with('caf\\u{e9}', 'caf'))
        kumo.test.mark(s.starts_with(12345, 12))
    """,
        recorder=recorder,
    )
    assert recorder.marks == [True, True, False, True, True, True]


async def test_set_data_takes_binary_content_as_kumomta_does(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(
        tmp_path,
        PRELUDE
        + """\
        kumo.on('smtp_server_message_received', function(msg)
          msg:set_data('Subject: x\\r\\n\\r\\n' .. bad .. '\\r\\n')
          err(msg.append_text_plain, msg, bad)  -- a String in KumoMTA: refused
        end)
    """,
        recorder=recorder,
    )
    msg = Message("a@example.com", "b@example.com", b"Subject: y\r\n\r\nbody\r\n")
    await runtime.hooks.smtp_server_message_received(msg, {})
    assert msg.get_data() == b"Subject: x\r\n\r\n\xff\xfe\r\n"
    assert recorder.marks == [f"msg:append_text_plain: bad argument #1: {CONVERSION} 0)"]


async def test_wrap_takes_binary_text_and_gives_bytes_back(tmp_path: Path) -> None:
    marks = await _marks(
        tmp_path,
        """\
        local hex = kumo.encode.hex_encode
        kumo.test.mark(hex(kumo.string.wrap(bad .. ' two three', 6)))
        kumo.test.mark(hex(kumo.string.wrap(string.rep('\\xff', 5), 2, 2)))
        kumo.test.mark(kumo.string.wrap('caf\\u{e9} ok', 5))
    """,
    )
    assert marks == [
        b"\xff\xfe two\r\n\tthree".hex(),
        b"\xff\xff\r\n\t\xff\xff\r\n\t\xff".hex(),
        "caf\u00e9\r\n\tok",
    ]
