"""``kumo.api.inject.inject_v1(REQUEST)`` from a Lua policy on a real node: the HTTP
API's request shape, checks, event and answer, without an HTTP request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.common.smtp_client import RawSmtpClient
from kumocore.reception.smtp.server import EsmtpListener
from tests.reception.harness import Reception, lua_policy_listener

POLICY = r"""
local kumo = require 'kumo'

kumo.on('init', function()
  kumo.start_esmtp_listener {
    listen = '127.0.0.1:0',
    hostname = 'mx.example',
    domains = { ['inbound.example'] = { relay_to = true } },
  }
end)

local REQUESTS = {
  empty = { envelope_sender = 'a@sender.example', content = 'x', recipients = {} },
  badtemplate = {
    envelope_sender = 'a@sender.example',
    content = 'Subject: {{ oops\r\n\r\nx',
    recipients = { { email = 'r@dest.example' } },
  },
  unknownkey = {
    envelope_sender = 'a@sender.example', content = 'x', bogus = 1,
    recipients = { { email = 'r@dest.example' } },
  },
}

kumo.on('smtp_server_message_received', function(msg)
  local who = msg:recipient().user
  if who == 'archive' then
    -- KumoMTA's documented example: a copy of the incoming message to an archive.
    local result = kumo.api.inject.inject_v1 {
      envelope_sender = msg:sender().email,
      content = msg:get_data(),
      recipients = {
        { email = 'archive@dest.example' },
        { email = 'refused@dest.example' },
        { email = 'templated@dest.example', substitutions = { name = 'Ann' } },
      },
    }
    msg:set_meta('result', kumo.json_encode(result))
  elseif REQUESTS[who] then
    local ok, err = pcall(kumo.api.inject.inject_v1, REQUESTS[who])
    msg:set_meta('result', tostring(ok) .. ' ' .. tostring(err))
  end
end)

kumo.on('http_message_generated', function(msg)
  if msg:recipient().user == 'refused' then
    -- Outside SMTP, kumo.disconnect refuses like kumo.reject: that recipient fails.
    kumo.disconnect(451, '4.7.1 not this one', 'FollowWith421')
  end
  msg:set_meta('generated_event', true)
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
        "s@sender.example", [f"{user}@inbound.example"], "Subject: hi {{ name }}\r\n\r\nbody\r\n"
    )
    await client.close()
    return str(final)


async def test_inject_v1_generates_runs_the_event_and_answers_like_the_api(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    smtp, reception = listener
    assert (await _send(smtp, "archive")).startswith("250 ")
    by_rcpt = {m.recipient.email: m for m in reception.messages}
    original = by_rcpt.pop("archive@inbound.example")
    assert json.loads(original.meta["result"]) == {
        "success_count": 2,
        "fail_count": 1,
        "failed_recipients": ["refused@dest.example"],
        "errors": ["refused@dest.example: 451 4.7.1 not this one"],
    }
    assert set(by_rcpt) == {"archive@dest.example", "templated@dest.example"}
    copy = by_rcpt["archive@dest.example"]
    assert copy.sender.email == "s@sender.example"
    assert copy.meta["generated_event"] is True
    # As KumoMTA: the local system injected it, through no listener.
    assert copy.meta["received_from"] == "127.0.0.1"
    assert copy.meta["http_auth"] == "kumomta.internal"
    assert copy.meta["reception_protocol"] == "HTTP"
    assert "received_via" not in copy.meta and "hostname" not in copy.meta
    # The content is a template, as over HTTP.
    assert b"Subject: hi Ann\r\n" in by_rcpt["templated@dest.example"].data
    assert b"body\r\n" in copy.data


@pytest.mark.parametrize(
    ("user", "needle"),
    [
        ("empty", "recipients: at least one recipient is required"),
        ("badtemplate", "syntax error: unexpected identifier"),
        ("unknownkey", "bogus"),
    ],
)
async def test_a_request_the_api_refuses_whole_is_an_error_and_injects_nothing(
    listener: tuple[EsmtpListener, Reception], user: str, needle: str
) -> None:
    smtp, reception = listener
    assert (await _send(smtp, user)).startswith("250 ")
    [message] = reception.messages
    assert message.meta["result"].startswith("false ")
    assert needle in message.meta["result"]
    assert "kumo.api.inject.inject_v1" in message.meta["result"]
