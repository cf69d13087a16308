"""``kumo.apply_supplemental_trace_header(msg, params)`` from a Lua policy on a real
listener: the listeners' supplemental header builder, with their ``trace_headers`` checks."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from bench.common.smtp_client import RawSmtpClient
from kumocore.mail.message import Message
from kumocore.reception.smtp.server import EsmtpListener
from kumocore.reception.trace import add_supplemental_header, decode_supplemental, fold_token
from tests.reception.harness import Reception, lua_policy_listener

POLICY = r"""
local kumo = require 'kumo'

kumo.on('init', function()
  kumo.start_esmtp_listener {
    listen = '127.0.0.1:0',
    hostname = 'mx.example',
    domains = { ['inbound.example'] = { relay_to = true } },
    trace_headers = { supplemental_header = false, received_header = false },
  }
end)

local PARAMS = {
  custom = { header_name = 'X-Trace', include_meta_names = { 'tenant', 'absent' } },
  off = { supplemental_header = false, header_name = 'X-Off' },
  unknownkey = { header_nme = 'X-Typo' },
  badname = { header_name = 'X Bad' },
  badtype = { include_meta_names = 'tenant' },
}

kumo.on('smtp_server_message_received', function(msg)
  local who = msg:recipient().user
  msg:set_meta('tenant', 'acme')
  if who == 'default' then
    kumo.apply_supplemental_trace_header(msg)
  elseif who == 'notamessage' then
    kumo.apply_supplemental_trace_header('text')
  elseif who == 'built' then
    local m = kumo.make_message('sender@example.com', 'recip@example.com',
                                'Subject: hello\r\n\r\nHi')
    kumo.apply_supplemental_trace_header(m)
    msg:set_meta('built', m:get_data())
  else
    kumo.apply_supplemental_trace_header(msg, PARAMS[who])
  end
end)
"""


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[tuple[EsmtpListener, Reception]]:
    path = tmp_path / "policy.lua"
    path.write_text(POLICY)
    async with lua_policy_listener(path) as started:
        yield started


async def _send(listener: EsmtpListener, user: str) -> str:
    client = await RawSmtpClient.connect(listener.address[1], source="127.0.0.5")
    await client.hello("client.example")
    _, final = await client.send_mail(
        "s@sender.example", [f"{user}@inbound.example"], "Subject: t\r\n\r\nbody\r\n"
    )
    await client.close()
    return str(final)


def _header(data: bytes, name: str) -> str | None:
    head = data.split(b"\r\n\r\n", 1)[0].decode().replace("\r\n\t", " ")  # unfolded
    for line in head.split("\r\n"):
        field, _, value = line.partition(":")
        if field == name:
            return value.strip()
    return None


async def test_default_params_add_x_kumoref_with_the_recipient(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    smtp, reception = listener
    assert (await _send(smtp, "default")).startswith("250 ")
    [message] = reception.messages
    value = _header(message.data, "X-KumoRef")
    assert value is not None
    assert decode_supplemental(value) == {"_@_": "\\_/", "recipient": "default@inbound.example"}


async def test_params_choose_the_header_name_and_the_meta_it_carries(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    smtp, reception = listener
    assert (await _send(smtp, "custom")).startswith("250 ")
    [message] = reception.messages
    assert _header(message.data, "X-KumoRef") is None
    value = _header(message.data, "X-Trace")
    assert value is not None
    # A named meta key the message lacks is there as null: KumoMTA's get_meta answers
    # Null for it, and the header inserts what get_meta answers.
    assert decode_supplemental(value) == {
        "_@_": "\\_/",
        "absent": None,
        "recipient": "custom@inbound.example",
        "tenant": "acme",
    }


async def test_supplemental_header_false_adds_nothing(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    smtp, reception = listener
    assert (await _send(smtp, "off")).startswith("250 ")
    [message] = reception.messages
    assert message.data.startswith(b"Subject: t\r\n")


async def test_a_message_from_make_message_gets_kumomtas_header(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    smtp, reception = listener
    assert (await _send(smtp, "built")).startswith("250 ")
    [message] = reception.messages
    # KumoMTA's own expected output for this message (crates/kumod/
    # test_apply_supplemental_header.lua, the recipient-only case).
    assert message.meta["built"] == (
        "X-KumoRef: eyJfQF8iOiJcXF8vIiwicmVjaXBpZW50IjoicmVjaXBAZXhhbXBsZS5jb20ifQ==\r\n"
        "Subject: hello\r\n\r\nHi"
    )


@pytest.mark.parametrize("user", ["unknownkey", "badname", "badtype", "notamessage"])
async def test_bad_params_are_a_policy_error_and_nothing_is_spooled(
    listener: tuple[EsmtpListener, Reception], user: str
) -> None:
    smtp, reception = listener
    assert await _send(smtp, user) == "421 4.3.0 mx.example technical difficulties"
    assert reception.messages == []


def test_a_long_header_is_folded_every_75_characters_with_sorted_keys() -> None:
    message = Message("s@sender.example", "r@inbound.example", b"Subject: t\r\n\r\nbody\r\n")
    message.meta["zeta"] = "z" * 200
    message.meta["Alpha"] = 1
    add_supplemental_header(message, "X-KumoRef", ["zeta", "Alpha"])
    head = message.data.split(b"\r\n\r\n", 1)[0].decode()
    lines = head.split("\r\n")
    assert lines[0].startswith("X-KumoRef: ")
    folded = [lines[0].removeprefix("X-KumoRef: ")]
    for line in lines[1:]:
        if not line.startswith("\t"):
            break
        folded.append(line[1:])
    assert len(folded) > 2
    assert all(len(part) == 75 for part in folded[:-1]) and 0 < len(folded[-1]) <= 75
    token = "".join(folded)
    assert list(orjson.loads(base64.b64decode(token))) == ["Alpha", "_@_", "recipient", "zeta"]
    assert decode_supplemental(" ".join(folded)) == decode_supplemental(token)


@pytest.mark.parametrize("length", [75, 150, 300])
def test_a_token_whose_length_is_a_multiple_of_the_width_ends_without_a_break(
    length: int,
) -> None:
    folded = fold_token("A" * length)
    assert not folded.endswith(("\r\n", "\t"))
    assert folded.replace("\r\n\t", "") == "A" * length
