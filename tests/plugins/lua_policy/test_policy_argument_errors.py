"""What a policy is told when it calls a message or header-map method with arguments that
do not fit, found by calling every documented method with nil, a table, a boolean and a
number: the argument and its Lua type are named, never a Python ``AttributeError`` or
"takes 2 positional arguments but 3 were given"; and a trailing nil is an argument left
out, as in Lua and KumoMTA's functions."""

from __future__ import annotations

from pathlib import Path

from kumocore.mail.message import Message

from .support import Recorder, load

PYTHON_WORDS = ("AttributeError", "NoneType", "positional argument", "'dict'", "object has",
                "TypeError", "_Lua")


async def marks_of(tmp_path: Path, body: str) -> list[str]:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, f"""\
        local kumo = require 'kumo'
        local function err(f, ...) kumo.test.mark(tostring(select(2, pcall(f, ...)))) end
        kumo.on('smtp_server_message_received', function(msg)
          {body}
        end)
    """, recorder=recorder)
    msg = Message("a@example.com", "b@example.com",
                  b"From: <a@example.com>\r\nSubject: x\r\n\r\nbody\r\n")
    await runtime.hooks.smtp_server_message_received(msg, {})
    return [str(mark) for mark in recorder.marks]


async def test_header_methods_name_a_nil_or_table_header_name(tmp_path: Path) -> None:
    marks = await marks_of(tmp_path, """
          err(msg.get_first_named_header_value, msg, nil)
          err(msg.get_all_named_header_values, msg, {})
          err(msg.get_address_header, msg, true)
          err(msg.remove_all_named_headers, msg, nil)
          err(msg.prepend_header, msg, 'X-Ok', nil)
          err(msg.append_header, msg, {}, 'v')
          err(msg.dkim_sign, msg, 'not a signer')
          err(msg.set_meta, msg, nil, 1)
          err(msg.get_meta, msg, {})
          err(msg.set_meta, msg, 'k', {1, {a=function() end}})
    """)
    expected = [
        "msg:get_first_named_header_value: NAME must be a string, got nil",
        "msg:get_all_named_header_values: NAME must be a string, got table",
        "msg:get_address_header: NAME must be a string, got boolean",
        "msg:remove_all_named_headers: NAME must be a string, got nil",
        "msg:prepend_header: VALUE must be a string, got nil",
        "msg:append_header: NAME must be a string, got table",
        "msg:dkim_sign: SIGNER must be a signer made by kumo.dkim.*_signer, got string",
        "msg:set_meta: KEY must be a string, got nil",
        "msg:get_meta: KEY must be a string, got table",
        "msg:set_meta: meta 'k'[1].a: function is not JSON-serialisable",
    ]
    for got, want in zip(marks, expected, strict=True):
        assert want in got, got
        assert not any(word in got for word in PYTHON_WORDS), got


async def test_a_trailing_nil_argument_is_one_left_out(tmp_path: Path) -> None:
    marks = await marks_of(tmp_path, """
          kumo.test.mark(msg:queue_name(nil))
          kumo.test.mark(msg:get_first_named_header_value('Subject', nil, nil))
          kumo.test.mark(kumo.string.trim('  x  ', nil))
          err(msg.queue_name, msg, 'extra')
    """)
    assert marks[:3] == ["example.com", "x", "x"]
    assert "(called with 1 argument(s))" in marks[3]
    assert not any(word in marks[3] for word in ("AttributeError", "NoneType")), marks[3]


async def test_methods_of_different_objects_with_one_name_keep_their_own_errors(
    tmp_path: Path,
) -> None:
    # The bridge keeps method functions per class: a header map's set_sender is not the
    # message's, and each error names its own owner.
    marks = await marks_of(tmp_path, """
          local headers = msg:parse_mime().headers
          err(headers.set_sender, headers, nil)
          err(msg.set_sender, msg, nil)
    """)
    assert marks[0].startswith("HeaderMap:set_sender: ") and "got nil" in marks[0], marks
    assert marks[1].startswith("msg:set_sender: ") and "got nil" in marks[1], marks
