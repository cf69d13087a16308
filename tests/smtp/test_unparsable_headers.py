"""A header block with a line that is not a header (issue 14, finding 16).

With the bundled policy (which reads ``X-Tenant``), an mbox ``From `` line in the header
block used to give ``421 4.3.0`` and a disconnect, for ever: the sender retried for days.
Now a header block that does not parse gets a permanent ``550 5.6.0`` naming the line, and
the session goes on (docs/reception.md says why kumocore refuses where KumoMTA accepts).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.common.smtp_client import RawSmtpClient
from kumocore.reception.smtp.server import EsmtpListener
from tests.reception.harness import Reception, lua_policy_listener

BUNDLED = Path(__file__).parents[2] / "kumocore" / "defaults" / "default-policy.lua"


def _bundled_message_received_handler() -> str:
    """The bundled policy's smtp_server_message_received handler, verbatim."""
    text = BUNDLED.read_text()
    match = re.search(r"kumo\.on\('smtp_server_message_received'.*?\nend\)\n", text, re.S)
    assert match is not None
    return match.group(0)


POLICY = """
local kumo = require 'kumo'

kumo.on('init', function()
  kumo.start_esmtp_listener { listen = '127.0.0.1:0', hostname = 'mx.example' }
end)

-- The bundled policy signs only when KUMOCORE_DKIM_KEY is set; unset here.
local function dkim_sign(msg) end
-- ...and routes to a relay host only when KUMOCORE_RELAY_HOST is set; unset here.
local function route(msg) end
""" + _bundled_message_received_handler()


@pytest.fixture
async def bundled(tmp_path: Path) -> AsyncIterator[tuple[EsmtpListener, Reception]]:
    path = tmp_path / "policy.lua"
    path.write_text(POLICY)
    async with lua_policy_listener(path) as started:
        yield started


async def _send(listener: EsmtpListener, body: bytes) -> tuple[RawSmtpClient, str]:
    client = await RawSmtpClient.connect(listener.address[1])
    await client.hello()
    _, final = await client.send_mail("a@example.com", ["b@example.com"], body)
    return client, str(final)


async def test_mbox_from_line_in_the_header_block_gets_a_permanent_550(
    bundled: tuple[EsmtpListener, Reception],
) -> None:
    listener, reception = bundled
    body = (b"From sender@example.com Thu Dec  3 12:00:00 2026\r\n"
            b"X-Tenant: acme\r\nSubject: mbox\r\n\r\nhello\r\n")
    client, final = await _send(listener, body)
    assert final.startswith("550 5.6.0 message headers cannot be parsed: malformed header")
    assert "From sender@example.com" in final
    assert reception.messages == []
    # The session goes on: the next, well-formed message is accepted.
    _, reply = await client.send_mail(
        "a@example.com", ["b@example.com"], "X-Tenant: acme\r\nSubject: ok\r\n\r\n")
    assert str(reply).startswith("250 OK ids=")
    assert reception.messages[0].meta["tenant"] == "acme"


async def test_header_block_that_cannot_be_parsed_gets_a_permanent_550(
    bundled: tuple[EsmtpListener, Reception],
) -> None:
    listener, reception = bundled
    # A field name with a control character: no parser can make a header of it.
    client, final = await _send(listener, b"X-Ten\x01ant: acme\r\nSubject: x\r\n\r\nhi\r\n")
    assert final.startswith("550 5.6.0 message headers cannot be parsed: ")
    assert reception.messages == []
    _, final2 = await client.send_mail("a@example.com", ["b@example.com"], "Subject: ok\r\n\r\n")
    assert final2.code == 250
