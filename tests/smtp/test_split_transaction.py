"""``smtp_server_split_transaction`` in a Lua policy: the handler groups the recipients.

Each test runs a real listener from a Lua policy (``kumo.start_esmtp_listener`` in
``init``) over a node's held queues, with a client bound to 127.0.0.5.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bench.common.smtp_client import RawSmtpClient
from kumocore import hookimpl
from kumocore.mail.message import Message
from kumocore.reception.smtp.server import EsmtpListener
from tests.reception.harness import Reception, lua_policy_listener
from tests.smtp.conftest import StartSmtp

HOSTNAME = "split.example"
BODY = "Subject: split\r\n\r\nhello\r\n"

POLICY = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.start_esmtp_listener {
    listen = '127.0.0.1:0', hostname = '%(hostname)s', batch_handling = '%(batching)s',
    domains = {
      ['example.com'] = { relay_to = true }, ['other.example'] = { relay_to = true },
    },
  }
end)
kumo.on('smtp_server_split_transaction', function(msg, conn_meta)
  msg:set_meta('split_saw', #msg:recipient_list())
%(handler)s
end)
"""

#: KumoMTA's docs' BifurcateAlways equivalent, in our own words.
ONE_EACH = """
  local batches = {}
  for _, rcpt in ipairs(msg:recipient_list()) do
    batches[#batches + 1] = { rcpt }
  end
  return batches
"""

#: BatchByDomain's equivalent: grouped by lowercased domain, collected into an array.
BY_DOMAIN = """
  local index, batches = {}, {}
  for _, rcpt in ipairs(msg:recipient_list()) do
    local key = rcpt.domain:lower()
    if index[key] == nil then
      batches[#batches + 1] = {}
      index[key] = #batches
    end
    table.insert(batches[index[key]], rcpt)
  end
  return batches
"""

#: KumoMTA's integration test's toy grouping: first letter of the user, and the domain.
BY_INITIAL = """
  local index, batches = {}, {}
  for _, rcpt in ipairs(msg:recipient_list()) do
    local key = rcpt.user:sub(1, 1) .. '@' .. rcpt.domain:lower()
    if index[key] == nil then
      batches[#batches + 1] = {}
      index[key] = #batches
    end
    table.insert(batches[index[key]], tostring(rcpt))
  end
  return batches
"""

Run = Callable[..., Awaitable[tuple[EsmtpListener, Reception]]]


@pytest.fixture
async def run(tmp_path: Path) -> AsyncIterator[Run]:
    """``await run(handler, batching='BifurcateAlways')``: a listener whose policy's
    split handler has the body ``handler``."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(handler: str, batching: str = "BifurcateAlways") -> tuple[
                EsmtpListener, Reception]:  # fmt: skip
            path = tmp_path / "policy.lua"
            path.write_text(POLICY % {"hostname": HOSTNAME, "batching": batching,
                                      "handler": handler})  # fmt: skip
            return await stack.enter_async_context(lua_policy_listener(path))

        yield start


async def session(listener: EsmtpListener) -> RawSmtpClient:
    client = await RawSmtpClient.connect(listener.address[1], source="127.0.0.5")
    await client.hello()
    return client


def emails(messages: list[Message]) -> list[list[str]]:
    return [[r.email for r in m.recipients] for m in messages]


async def test_one_batch_per_recipient_as_bifurcate_always(run: Run) -> None:
    listener, reception = await run(ONE_EACH, batching="BatchByDomain")
    client = await session(listener)
    rcpts = ["a@example.com", "b@example.com", "c@other.example"]
    _, final = await client.send_mail("s@sender.example", rcpts, BODY)
    assert final.code == 250, final
    # The handler's answer wins over the listener's BatchByDomain.
    assert emails(reception.messages) == [[r] for r in rcpts]
    # The handler saw the whole transaction; its meta reaches every message.
    assert {m.meta["split_saw"] for m in reception.messages} == {3}


async def test_grouped_by_domain_as_batch_by_domain(run: Run) -> None:
    listener, reception = await run(BY_DOMAIN)
    client = await session(listener)
    _, final = await client.send_mail(
        "s@sender.example",
        ["a@example.com", "x@other.example", "b@EXAMPLE.com", "y@other.example"],
        BODY,
    )
    assert final.code == 250, final
    assert emails(reception.messages) == [
        ["a@example.com", "b@example.com"],
        ["x@other.example", "y@other.example"],
    ]
    await reception.records("Reception")
    receptions = reception.node.log_sink.parsed("Reception")
    assert [r["recipient"] for r in receptions] == emails(reception.messages)


async def test_a_custom_grouping_of_address_strings(run: Run) -> None:
    listener, reception = await run(BY_INITIAL)
    client = await session(listener)
    rcpts = ["fred@example.com", "frank@example.com", "joe@example.com", "pete@example.com",
             "john@example.com"]  # fmt: skip
    _, final = await client.send_mail("s@sender.example", rcpts, BODY)
    assert final.code == 250, final
    assert emails(reception.messages) == [
        ["fred@example.com", "frank@example.com"], ["joe@example.com", "john@example.com"],
        ["pete@example.com"]]  # fmt: skip


async def test_called_for_one_recipient_too(run: Run) -> None:
    listener, reception = await run("  return nil")
    client = await session(listener)
    _, final = await client.send_mail("s@sender.example", ["a@example.com"], BODY)
    assert final.code == 250, final
    [message] = reception.messages
    assert message.meta["split_saw"] == 1


async def test_nil_lets_batch_handling_decide(run: Run) -> None:
    listener, reception = await run("  return nil", batching="BatchByDomain")
    client = await session(listener)
    _, final = await client.send_mail(
        "s@sender.example", ["a@example.com", "x@other.example", "b@example.com"], BODY
    )
    assert final.code == 250, final
    assert emails(reception.messages) == [["a@example.com", "b@example.com"],
                                          ["x@other.example"]]  # fmt: skip


async def test_an_address_that_was_not_a_recipient_gets_its_message(run: Run) -> None:
    # KumoMTA takes the batches as returned (adding a recipient here is possible,
    # though smtp_server_data is the place for it).
    listener, reception = await run(
        "  return { msg:recipient_list(), { 'capture@other.example' } }"
    )
    client = await session(listener)
    _, final = await client.send_mail("s@sender.example", ["a@example.com", "b@example.com"], BODY)
    assert final.code == 250, final
    assert emails(reception.messages) == [["a@example.com", "b@example.com"],
                                          ["capture@other.example"]]  # fmt: skip


async def test_no_batch_at_all_is_nothing_to_relay(run: Run) -> None:
    # KumoMTA: an empty answer makes no message, and the reply for nothing relayed.
    listener, reception = await run("  return {}")
    client = await session(listener)
    _, final = await client.send_mail("s@sender.example", ["a@example.com"], BODY)
    assert str(final) == "550 5.7.1 relaying not permitted"
    assert reception.messages == []


async def test_a_rejection_refuses_the_transaction_with_its_reply(run: Run) -> None:
    listener, reception = await run("  kumo.reject(550, '5.7.1 not split today')")
    client = await session(listener)
    _, final = await client.send_mail("s@sender.example", ["a@example.com"], BODY)
    assert str(final) == "550 5.7.1 not split today"
    assert reception.messages == []
    # A rejection leaves the session usable.
    assert (await client.command("RSET")).code == 250


@pytest.mark.parametrize(
    ("handler", "problem"),
    [
        ("  return 'a@example.com'", "must return an array of arrays of addresses"),
        ("  return { msg:recipient_list(), {} }", "batch 2: the recipient list is empty"),
        (
            "  return { ['example.com'] = msg:recipient_list() }",
            "got a table keyed by 'example.com'",
        ),
        ("  return { 'a@example.com' }", "batch 1 must be an array of addresses"),
        ("  return { { 42 } }", "batch 1: the recipient list holds 42, not an address"),
        ("  return { { 'not an address' } }", "batch 1: "),
    ],
)
async def test_an_answer_of_another_shape_refuses_the_transaction_and_says_why(
    run: Run, handler: str, problem: str
) -> None:
    listener, reception = await run(handler)
    client = await session(listener)
    with capture_logs() as logs:
        _, final = await client.send_mail(
            "s@sender.example", ["a@example.com", "b@example.com"], BODY
        )
        # KumoMTA's answer to a failed event (its "technical difficulties" 421), which
        # ends the session as any 421 does.
        assert str(final) == f"421 4.3.0 {HOSTNAME} technical difficulties"
        assert await client.closed()
    assert reception.messages == []
    assert reception.data_spool.items == {}
    [failure] = [entry for entry in logs if entry["event"] == "smtp session failed"]
    assert "smtp_server_split_transaction" in failure["error"]
    assert problem in failure["error"]
    # The listener goes on serving: the next session's transaction is taken.
    listener_ok = await session(listener)
    assert (await listener_ok.command("NOOP")).code == 250


class PythonSplit:
    """A Python policy's handler: addresses and strings mixed, in tuples."""

    @hookimpl
    def kumo_smtp_server_split_transaction(self, message: Message) -> Any:
        first, *rest = message.recipient_list()
        return ((first,), tuple(str(r) for r in rest))


async def test_a_python_handler_may_answer_addresses_or_strings(start_smtp: StartSmtp) -> None:
    env = await start_smtp(PythonSplit(), domains={"example.com": {"relay_to": True}})
    client = await env.session("127.0.0.5")
    rcpts = ["a@example.com", "b@example.com", "c@example.com"]
    _, final = await client.send_mail("s@sender.example", rcpts, BODY)
    assert final.code == 250, final
    assert emails(env.messages) == [["a@example.com"], ["b@example.com", "c@example.com"]]
