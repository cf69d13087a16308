"""Address headers as KumoMTA shows them: tostring is JSON, and the single-address fields
(user, domain, email, name) raise unless the header is one simple address."""

from __future__ import annotations

from pathlib import Path

import pytest

from kumocore.mail.address import parse_address_header
from kumocore.mail.message import Message
from tests.plugins.lua_policy.support import Recorder, load

DATA = (
    b"From: John Smith <john.smith@example.com>\r\n"
    b"To: user@example.com, =?utf-8?q?Andr=C3=A9?= <andre@example.net>\r\n"
    b"Cc: Friends: a@example.org, B <b@example.org>;\r\n"
    b"Subject: hi\r\n"
    b"\r\n"
    b"body\r\n"
)


def message() -> Message:
    return Message("alice@examplecorp.com", "bob@gmail.com", DATA)


def test_each_address_renders_as_json_with_a_null_name_when_absent() -> None:
    to = message().to_header()
    assert to is not None
    assert [str(a) for a in to.list] == [
        '{"name":null,"address":"user@example.com"}',
        '{"name":"André","address":"andre@example.net"}',
    ]


def test_a_header_renders_as_a_json_array_of_its_entries() -> None:
    msg = message()
    assert str(msg.from_header()) == (
        '[{"Address":{"name":"John Smith","address":"john.smith@example.com"}}]')
    assert str(msg.get_address_header("Cc")) == (
        '[{"Group":{"name":"Friends","addresses":[{"name":null,"address":"a@example.org"},'
        '{"name":"B","address":"b@example.org"}]}}]')


@pytest.mark.parametrize("field", ["user", "domain", "email", "name"])
def test_single_address_fields_answer_for_one_address_and_raise_for_several(
    field: str,
) -> None:
    sender = message().from_header()
    assert getattr(sender, field) == {"user": "john.smith", "domain": "example.com",
                                      "email": "john.smith@example.com",
                                      "name": "John Smith"}[field]
    to = message().to_header()
    with pytest.raises(ValueError, match=r"^is not a simple single address$"):
        getattr(to, field)


@pytest.mark.parametrize("field", ["user", "domain", "email", "name"])
def test_single_address_fields_raise_for_a_group(field: str) -> None:
    cc = message().get_address_header("Cc")
    assert cc is not None
    assert [a.email for a in cc.list] == ["a@example.org", "b@example.org"]
    with pytest.raises(ValueError, match=r"^is not a simple address$"):
        getattr(cc, field)


def test_a_group_next_to_a_mailbox_is_several_entries() -> None:
    header = parse_address_header("Team: a@x.org;, c@y.org")
    assert header is not None
    assert [a.email for a in header.list] == ["a@x.org", "c@y.org"]
    with pytest.raises(ValueError, match="is not a simple single address"):
        _ = header.domain


async def test_lua_tostring_is_json_and_fields_of_a_list_raise(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          kumo.test.mark(tostring(msg:from_header()))
          for _, address in ipairs(msg:to_header().list) do
            kumo.test.mark(tostring(address))
          end
          kumo.test.mark(msg:from_header().domain)
          for _, field in ipairs { 'user', 'domain', 'email', 'name' } do
            local ok, err = pcall(function() return msg:to_header()[field] end)
            kumo.test.mark({ ok, tostring(err):find('is not a simple single address', 1, true)
                                 ~= nil })
          end
        end)
    """, recorder=recorder)
    await runtime.hooks.smtp_server_message_received(message(), {})
    assert recorder.marks == [
        '[{"Address":{"name":"John Smith","address":"john.smith@example.com"}}]',
        '{"name":null,"address":"user@example.com"}',
        '{"name":"André","address":"andre@example.net"}',
        "example.com",
        [False, True], [False, True], [False, True], [False, True],
    ]


def test_a_header_of_only_an_empty_group_is_an_empty_list_not_nil() -> None:
    header = parse_address_header("undisclosed-recipients:;")
    assert header is not None and bool(header)
    assert header.list == ()
    assert str(header) == '[{"Group":{"name":"undisclosed-recipients","addresses":[]}}]'
    with pytest.raises(ValueError, match=r"^is not a simple address$"):
        _ = header.email


async def test_lua_to_header_of_undisclosed_recipients_has_an_empty_list(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          local to = msg:to_header()
          kumo.test.mark(to ~= nil)
          kumo.test.mark(#to.list)
          kumo.test.mark(tostring(to))
          kumo.test.mark(msg:get_address_header('Cc') == nil)
        end)
    """, recorder=recorder)
    data = b"From: a@example.com\r\nTo: undisclosed-recipients:;\r\n\r\nbody\r\n"
    await runtime.hooks.smtp_server_message_received(
        Message("a@example.com", "b@example.net", data), {})
    assert recorder.marks == [
        True, 0, '[{"Group":{"name":"undisclosed-recipients","addresses":[]}}]', True]
