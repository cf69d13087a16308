"""``msg:from_header()`` and friends on a hostile header: a Lua error naming the method,
never Python's ``RecursionError``."""

from __future__ import annotations

from pathlib import Path

from kumocore.mail.message import Message

from .support import Recorder, load


async def test_deeply_nested_address_headers_are_clear_errors_naming_the_method(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    runtime, _ = await load(
        tmp_path,
        """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          for _, call in ipairs {
            function() return msg:from_header() end,
            function() return msg:to_header() end,
            function() return msg:get_address_header('Cc') end,
          } do
            local ok, err = pcall(call)
            kumo.test.mark(ok and 'no error' or tostring(err))
          end
          kumo.test.mark(msg:get_address_header('Reply-To').email)
        end)
    """,
        recorder=recorder,
    )
    data = (
        b"From: "
        + b"(" * 5000
        + b"\r\nTo: x@y.org "
        + b"(" * 70
        + b")" * 70
        + b"\r\nCc: G: "
        + b":" * 3000
        + b"\r\nReply-To: "
        + b"(" * 64
        + b")" * 64
        + b" r@y.org\r\n\r\nbody\r\n"
    )
    await runtime.hooks.smtp_server_message_received(
        Message("a@example.com", "b@example.com", data), {}
    )
    from_error, to_error, cc_error, reply_to = recorder.marks
    assert from_error.startswith("msg:from_header: address header nests comments too deeply")
    assert to_error.startswith("msg:to_header: address header nests comments too deeply")
    assert cc_error.startswith("msg:get_address_header: address header nests groups")
    assert "Recursion" not in from_error + to_error + cc_error
    assert reply_to == "r@y.org"  # nested exactly to the bound: still read
