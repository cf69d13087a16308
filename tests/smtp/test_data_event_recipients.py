"""``smtp_server_data`` may change the transaction's recipients (alias expansion, legal
capture): the messages are made from the list it leaves, as in KumoMTA.

A real listener from a Lua policy over a node's held queues; clients bound to
127.0.0.5, outside ``relay_hosts``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bench.common.smtp_client import RawSmtpClient
from kumocore.mail.message import Message
from kumocore.reception.smtp.server import EsmtpListener
from tests.reception.harness import Reception, lua_policy_listener

POLICY = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.start_esmtp_listener {
    listen = '127.0.0.1:0', hostname = 'data.example', batch_handling = '%(batching)s',
    max_recipients_per_message = 2,
    domains = {
      ['inbound.example'] = { relay_to = true }, ['archive.example'] = { relay_to = true },
    },
  }
end)
kumo.on('smtp_server_data', function(msg, conn_meta)
  local subject = msg:get_first_named_header_value('Subject')
  local list = msg:recipient_list()
  if subject == 'capture' then
    table.insert(list, 'legal@archive.example')
    msg:set_recipient(list)
  elseif subject == 'drop' then
    local keep = {}
    for _, rcpt in ipairs(list) do
      if rcpt.user ~= 'drop' then
        table.insert(keep, rcpt)
      end
    end
    msg:set_recipient(keep)
  elseif subject == 'alias' then
    msg:set_recipient 'expanded@inbound.example'
  elseif subject == 'nobody' then
    msg:set_recipient {}
  end
end)
kumo.on('smtp_server_message_received', function(msg, conn_meta)
  msg:set_meta('received_for', #msg:recipient_list())
end)
"""

Run = Callable[[str], Awaitable[tuple[EsmtpListener, Reception]]]


@pytest.fixture
async def run(tmp_path: Path) -> AsyncIterator[Run]:
    async with contextlib.AsyncExitStack() as stack:

        async def start(batching: str) -> tuple[EsmtpListener, Reception]:
            path = tmp_path / "policy.lua"
            path.write_text(POLICY % {"batching": batching})
            return await stack.enter_async_context(lua_policy_listener(path))

        yield start


async def send(listener: EsmtpListener, subject: str, rcpts: list[str]) -> str:
    client = await RawSmtpClient.connect(listener.address[1], source="127.0.0.5")
    await client.hello()
    replies, final = await client.send_mail(
        "s@sender.example", rcpts, f"Subject: {subject}\r\n\r\nbody\r\n"
    )
    assert [r.code for r in replies] == [250] * len(rcpts)
    await client.close()
    return str(final)


def emails(messages: list[Message]) -> list[list[str]]:
    return [[r.email for r in m.recipients] for m in messages]


TWO = ["a@inbound.example", "b@inbound.example"]


async def test_a_captured_recipient_gets_its_own_message(run: Run) -> None:
    listener, reception = await run("BifurcateAlways")
    assert (await send(listener, "capture", TWO)).startswith("250 OK ids=")
    # Three messages for a transaction of max_recipients_per_message (2) recipients:
    # the limit bounds what the client sends, not the policy (KumoMTA checks it at RCPT).
    assert emails(reception.messages) == [[TWO[0]], [TWO[1]], ["legal@archive.example"]]


async def test_a_captured_recipient_joins_the_batches(run: Run) -> None:
    listener, reception = await run("BatchByDomain")
    assert (await send(listener, "capture", TWO)).startswith("250 OK ids=")
    assert emails(reception.messages) == [TWO, ["legal@archive.example"]]
    assert [m.meta["received_for"] for m in reception.messages] == [2, 1]
    await reception.records("Reception")
    receptions = reception.node.log_sink.parsed("Reception")
    assert [r["recipient"] for r in receptions] == [TWO, "legal@archive.example"]


async def test_a_removed_recipient_gets_no_message(run: Run) -> None:
    listener, reception = await run("BatchByDomain")
    assert (await send(listener, "drop", ["a@inbound.example", "drop@inbound.example"])
            ).startswith("250 OK ids=")  # fmt: skip
    [message] = reception.messages
    assert emails([message]) == [["a@inbound.example"]]
    assert message.recipients == (message.recipient,)  # one address, not a batch of one


async def test_an_alias_replaces_the_list(run: Run) -> None:
    listener, reception = await run("BifurcateAlways")
    assert (await send(listener, "alias", TWO)).startswith("250 OK ids=")
    assert emails(reception.messages) == [["expanded@inbound.example"]]
    received = reception.messages[0].get_first_named_header_value("Received")
    assert received is not None and "for <expanded@inbound.example>" in received


async def test_an_empty_list_is_a_policy_error(run: Run) -> None:
    listener, reception = await run("BifurcateAlways")
    assert await send(listener, "nobody", TWO) == ("421 4.3.0 data.example technical difficulties")
    assert reception.messages == []


async def test_without_changes_the_client_recipients_stay(run: Run) -> None:
    listener, reception = await run("BatchByDomain")
    assert (await send(listener, "plain", TWO)).startswith("250 OK ids=")
    assert emails(reception.messages) == [TWO]
