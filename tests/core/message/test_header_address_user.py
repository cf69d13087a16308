"""A header address's ``user`` is the decoded local part (KumoMTA since 2026.04.09): the
quotes of a quoted local part go, ``email`` keeps them."""

from __future__ import annotations

from pathlib import Path

from kumocore.mail.address import parse_address_header
from kumocore.mail.message import Message
from tests.plugins.lua_policy.support import Recorder, load


def test_user_of_a_quoted_local_part_is_unquoted_and_email_keeps_the_quotes() -> None:
    header = parse_address_header(r'"info@"@example.com, "a\"b"@y.org, "john doe"@x.org')
    assert header is not None
    assert [(a.user, a.email) for a in header.list] == [
        ("info@", '"info@"@example.com'),
        ('a"b', r'"a\"b"@y.org'),
        ("john doe", '"john doe"@x.org'),
    ]


async def test_lua_user_of_a_single_quoted_from_address_is_unquoted(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          local from = msg:from_header()
          kumo.test.mark({ from.user, from.domain, from.email })
        end)
    """, recorder=recorder)
    msg = Message("a@example.com", "b@example.net",
                  b'From: Info <"info@"@example.com>\r\nSubject: x\r\n\r\nbody\r\n')
    await runtime.hooks.smtp_server_message_received(msg, {})
    assert recorder.marks == [["info@", "example.com", '"info@"@example.com']]
