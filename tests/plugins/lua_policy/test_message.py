"""What handlers see: the message object, addresses and connection metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kumocore.mail.address import parse_envelope_address
from kumocore.mail.message import Message

from .support import DATA, Recorder, load


def make_message() -> Message:
    return Message("alice@examplecorp.com", "bob@gmail.com", DATA, id="0123456789abcdef")


async def test_message_methods_read_and_change_the_message(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          kumo.test.mark(msg:id())
          kumo.test.mark(msg:get_first_named_header_value 'Subject')
          kumo.test.mark(msg:get_first_named_header_value 'X-Missing')
          msg:append_header('X-Extra', 'one')
          msg:append_header('X-Extra', 'two')
          kumo.test.mark(msg:get_all_named_header_values 'X-Extra')
          msg:prepend_header('X-First', 'yes')
          msg:remove_all_named_headers 'X-Campaign'
          msg:import_x_headers { 'x-tenant' }
          msg:set_meta('labels', { 'a', 'b' })
          kumo.test.mark(msg:get_meta('x_tenant'))
          kumo.test.mark(msg:get_meta('labels')[2])
          kumo.test.mark(msg:get_meta('nothing'))
        end)
    """, recorder=recorder)
    msg = make_message()
    await runtime.hooks.smtp_server_message_received(msg, {})
    assert recorder.marks == [
        "0123456789abcdef", "hello", None, ["one", "two"], "TenantOne", "b", None]
    assert msg.get_data().startswith(b"X-First: yes\r\n")
    assert msg.get_first_named_header_value("X-Campaign") is None
    assert msg.get_meta("labels") == ["a", "b"]


async def test_addresses_expose_user_domain_email_and_name(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        local function show(a)
          return table.concat({ a.user, a.domain, a.email, tostring(a.name), tostring(a) }, '|')
        end
        kumo.on('smtp_server_message_received', function(msg)
          kumo.test.mark(show(msg:sender()))
          kumo.test.mark(show(msg:recipient()))
          kumo.test.mark(show(msg:from_header()))
          kumo.test.mark(show(msg:to_header()))
          kumo.test.mark(msg:from_header().list[1].email)
        end)
    """, recorder=recorder)
    await runtime.hooks.smtp_server_message_received(make_message(), {})
    assert recorder.marks == [
        "alice|examplecorp.com|alice@examplecorp.com|nil|alice@examplecorp.com",
        "bob|gmail.com|bob@gmail.com|nil|bob@gmail.com",
        # tostring of an address header: KumoMTA's JSON rendition of its entries
        'alice|examplecorp.com|alice@examplecorp.com|Alice|'
        '[{"Address":{"name":"Alice","address":"alice@examplecorp.com"}}]',
        'bob|gmail.com|bob@gmail.com|Bob|[{"Address":{"name":"Bob","address":"bob@gmail.com"}}]',
        "alice@examplecorp.com",
    ]


async def test_envelope_address_argument(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_mail_rcpt_to', function(rcpt, conn_meta)
          kumo.test.mark(rcpt.user .. ' at ' .. rcpt.domain .. ' = ' .. tostring(rcpt))
        end)
    """, recorder=recorder)
    recipient = parse_envelope_address("carol@example.net")
    await runtime.hooks.smtp_server_mail_rcpt_to(recipient, {})
    assert recorder.marks == ["carol at example.net = carol@example.net"]


async def test_conn_meta_is_a_live_view_of_the_connection(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_ehlo', function(domain, conn_meta)
          kumo.test.mark(conn_meta.received_from .. ' ' .. conn_meta:get_meta('hostname'))
          conn_meta:set_meta('ehlo_seen', domain)
          conn_meta.note = { 'a' }
          conn_meta.drop_me = nil
        end)
        kumo.on('smtp_server_mail_from', function(sender, conn_meta)
          local keys = {}
          for k, v in pairs(conn_meta) do keys[#keys + 1] = k end
          table.sort(keys)
          kumo.test.mark(table.concat(keys, ','))
          kumo.test.mark(conn_meta.ehlo_seen)
        end)
    """, recorder=recorder)
    conn_meta = {"received_from": "127.0.0.1:5000", "hostname": "mx.local", "drop_me": 1}
    await runtime.hooks.smtp_server_ehlo("client.example", conn_meta)
    await runtime.hooks.smtp_server_mail_from(parse_envelope_address("a@b.example"), conn_meta)
    assert conn_meta == {
        "received_from": "127.0.0.1:5000", "hostname": "mx.local",
        "ehlo_seen": "client.example", "note": ["a"],
    }
    assert recorder.marks == [
        "127.0.0.1:5000 mx.local", "ehlo_seen,hostname,note,received_from", "client.example"]


async def test_dkim_sign_with_a_signer_from_kumo_dkim(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    key_path = tmp_path / "key.pem"
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    runtime, _ = await load(tmp_path, f"""\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          local signer = kumo.dkim.rsa_sha256_signer {{
            domain = msg:from_header().domain,
            selector = 's1',
            headers = {{ 'From', 'To', 'Subject' }},
            key = '{key_path.as_posix()}',
          }}
          msg:dkim_sign(signer)
        end)
    """)
    msg = make_message()
    await runtime.hooks.smtp_server_message_received(msg, {})
    signature = msg.get_first_named_header_value("DKIM-Signature") or ""
    assert "d=examplecorp.com" in signature and "s=s1" in signature


async def test_auth_handler_result_is_returned(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_auth_plain', function(authz, authc, password, conn_meta)
          return authc == 'scott' and password == 'tiger'
        end)
    """)
    assert await runtime.hooks.smtp_server_auth_plain("", "scott", "tiger", {})
    assert not await runtime.hooks.smtp_server_auth_plain("", "scott", "lion", {})


async def test_msg_recipient_is_one_address_or_a_list_for_a_batch(tmp_path: Path) -> None:
    recorder = Recorder()
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          kumo.test.mark(tostring(msg:recipient()))
          msg:set_recipient { 'x@gmail.com', msg:recipient(), 'z@gmail.com' }
          local all = msg:recipient()
          kumo.test.mark(#all)
          kumo.test.mark(all[2].email)
          kumo.test.mark(#msg:recipient_list())
          msg:set_recipient 'only@yahoo.com'
          kumo.test.mark(msg:recipient().domain)
          msg:set_recipient { 'p@aol.com', 'q@aol.com' }
        end)
    """, recorder=recorder)
    msg = make_message()
    await runtime.hooks.smtp_server_message_received(msg, {})
    assert recorder.marks == ["bob@gmail.com", 3, "bob@gmail.com", 3, "yahoo.com"]
    assert [r.email for r in msg.recipients] == ["p@aol.com", "q@aol.com"]
    assert msg.queue_name() == "aol.com"


async def test_msg_set_recipient_with_an_empty_table_is_an_error(tmp_path: Path) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          msg:set_recipient {}
        end)
    """)
    msg = make_message()
    with pytest.raises(Exception, match="recipient list is empty"):
        await runtime.hooks.smtp_server_message_received(msg, {})
    assert [r.email for r in msg.recipients] == ["bob@gmail.com"]


async def test_msg_set_recipient_with_a_number_in_the_list_names_it_and_changes_nothing(
    tmp_path: Path,
) -> None:
    runtime, _ = await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.on('smtp_server_message_received', function(msg)
          msg:set_recipient { 'p@aol.com', 42 }
        end)
    """)
    msg = make_message()
    with pytest.raises(Exception, match="holds 42, not an address"):
        await runtime.hooks.smtp_server_message_received(msg, {})
    assert [r.email for r in msg.recipients] == ["bob@gmail.com"]
