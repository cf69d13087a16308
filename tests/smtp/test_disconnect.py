"""``kumo.disconnect(code, text, disposition)`` over a real SMTP session: which replies
the client reads and whether the server then closes, for each KumoMTA disposition."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.common.smtp_client import RawSmtpClient
from kumocore.reception.smtp.server import EsmtpListener
from tests.reception.harness import Reception, lua_policy_listener

POLICY = """
local kumo = require 'kumo'

kumo.on('init', function()
  kumo.start_esmtp_listener {
    listen = '127.0.0.1:0',
    hostname = 'mx.example',
    domains = { ['inbound.example'] = { relay_to = true } },
  }
end)

-- The sender's local part picks the call, so one policy covers every case.
local CALLS = {
  default = function() kumo.disconnect(451, '4.7.1 no thank you') end,
  force = function() kumo.disconnect(550, '5.7.1 go away', 'ForceDisconnect') end,
  follow = function() kumo.disconnect(451, '4.7.1 not now', 'FollowWith421') end,
  follow421 = function() kumo.disconnect(421, '4.7.0 mx.example bye', 'FollowWith421') end,
  if421 = function() kumo.disconnect(451, '4.7.1 try later', 'If421') end,
  if421close = function() kumo.disconnect(421, '4.7.0 mx.example closing', 'If421') end,
  badmode = function() kumo.disconnect(451, 'x', 'Sometimes') end,
  badtext = function() kumo.disconnect(451, nil) end,
  caught = function()
    local ok, err = pcall(kumo.disconnect, 451, '4.7.1 caught')
    if not ok then kumo.reject(550, '5.7.1 rethrown as a plain rejection') end
  end,
}

kumo.on('smtp_server_mail_from', function(sender)
  local call = CALLS[sender.user]
  if call then call() end
end)

kumo.on('smtp_server_message_received', function(msg)
  if msg:recipient().user == 'data-follow' then
    kumo.disconnect(554, '5.7.1 content refused', 'FollowWith421')
  end
end)
"""


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[tuple[EsmtpListener, Reception]]:
    path = tmp_path / "policy.lua"
    path.write_text(POLICY)
    async with lua_policy_listener(path) as started:
        yield started


async def _session(listener: EsmtpListener) -> RawSmtpClient:
    client = await RawSmtpClient.connect(listener.address[1], source="127.0.0.5")
    assert (await client.hello("client.example")).code == 250
    return client


async def _still_open(client: RawSmtpClient) -> bool:
    return (await client.command("NOOP")).code == 250


@pytest.mark.parametrize(
    ("user", "reply"),
    [
        ("default", "451 4.7.1 no thank you"),  # KumoMTA's default is ForceDisconnect
        ("force", "550 5.7.1 go away"),
        ("follow421", "421 4.7.0 mx.example bye"),  # already a 421: nothing synthesized
        ("if421close", "421 4.7.0 mx.example closing"),
    ],
)
async def test_disconnect_replies_once_then_closes(
    listener: tuple[EsmtpListener, Reception], user: str, reply: str
) -> None:
    client = await _session(listener[0])
    assert str(await client.command(f"MAIL FROM:<{user}@sender.example>")) == reply
    assert await client.closed()


async def test_follow_with_421_sends_the_reply_then_a_421_then_closes(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    client = await _session(listener[0])
    assert str(await client.command("MAIL FROM:<follow@sender.example>")) == "451 4.7.1 not now"
    assert str(await client.read_reply()) == "421 mx.example disconnecting due to previous error"
    assert await client.closed()


async def test_if421_with_another_code_is_a_plain_rejection(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    client = await _session(listener[0])
    assert str(await client.command("MAIL FROM:<if421@sender.example>")) == "451 4.7.1 try later"
    assert await _still_open(client)
    assert (await client.command("MAIL FROM:<ok@sender.example>")).code == 250


async def test_disconnect_after_data_follows_with_421_and_spools_nothing(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    smtp, reception = listener
    client = await _session(smtp)
    _, final = await client.send_mail(
        "ok@sender.example", ["data-follow@inbound.example"], "Subject: x\r\n\r\nbody\r\n"
    )
    assert str(final) == "554 5.7.1 content refused"
    assert str(await client.read_reply()) == "421 mx.example disconnecting due to previous error"
    assert await client.closed()
    assert reception.messages == []


@pytest.mark.parametrize("user", ["badmode", "badtext"])
async def test_disconnect_with_a_bad_argument_is_a_policy_error(
    listener: tuple[EsmtpListener, Reception], user: str
) -> None:
    # A policy bug, not a refusal: answered like any other policy error.
    client = await _session(listener[0])
    assert (
        str(await client.command(f"MAIL FROM:<{user}@sender.example>"))
        == "421 4.3.0 mx.example technical difficulties"
    )


async def test_a_caught_disconnect_does_not_end_the_session(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    client = await _session(listener[0])
    assert (
        str(await client.command("MAIL FROM:<caught@sender.example>"))
        == "550 5.7.1 rethrown as a plain rejection"
    )
    assert await _still_open(client)
