"""DATA held in memory is bounded per listener (``max_data_buffered``): past the budget a
transaction gets ``452 4.3.1`` and nothing it sent is kept; large messages still pass."""

from __future__ import annotations

import asyncio

import pytest

from bench.common.smtp_client import RawSmtpClient
from kumocore import ConfigError
from kumocore.reception.smtp.receive import data_budget
from tests.smtp.conftest import SmtpEnv, StartSmtp

LINE = "y" * 78 + "\r\n"


async def unfinished_data(env: SmtpEnv, source: str = "127.0.0.1") -> RawSmtpClient:
    """A session that has sent 800 KB of DATA without its end (given 0.3 s to arrive)."""
    client = await env.session(source)
    await client.command("MAIL FROM:<a@example.com>")
    await client.command("RCPT TO:<b@example.com>")
    assert (await client.command("DATA")).code == 354
    await client.send("Subject: x\r\n\r\n" + LINE * 10_000)  # 800 KB, not finished
    await asyncio.sleep(0.3)
    return client


async def test_data_over_the_listener_budget_is_refused_with_452_and_not_kept(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(max_data_buffered="1 MiB", max_message_size="4 MiB")
    holder = await unfinished_data(env)
    other = await env.session()
    _, final = await other.send_mail("a@example.com", ["c@example.com"],
                                     "Subject: x\r\n\r\n" + LINE * 5_000)
    assert str(final).startswith("452 4.3.1")
    await holder.send(".\r\n")
    assert (await holder.read_reply()).code == 250
    budget = data_budget(next(iter(env.listener.sessions)))
    assert budget.held == 0 and budget.refused == 1
    # With the first message answered, the budget is free again.
    _, final = await other.send_mail("a@example.com", ["c@example.com"],
                                     "Subject: x\r\n\r\n" + LINE * 5_000)
    assert final.code == 250


async def test_one_client_outside_relay_hosts_holds_at_most_its_share_of_the_budget(
    start_smtp: StartSmtp,
) -> None:
    # An outside check filled the whole budget from one address with unfinished DATA
    # kept alive by a byte every 30 s: every other client's mail got 452. Its share is an
    # eighth of the budget, or one message of max_message_size if that is more (1 MiB).
    env = await start_smtp(max_data_buffered="8 MiB", max_message_size="1 MiB",
                           domains={"example.com": {"relay_to": True}})
    first = await unfinished_data(env, "127.0.0.5")
    second = await unfinished_data(env, "127.0.0.5")  # over the address's share
    budget = data_budget(next(iter(env.listener.sessions)))
    assert 0 < budget.held <= 1024 * 1024
    trusted = await env.session()
    _, final = await trusted.send_mail("a@example.com", ["c@example.com"],
                                       "Subject: x\r\n\r\n" + LINE * 10_000)
    assert final.code == 250
    await second.send(".\r\n")
    assert str(await second.read_reply()).startswith("452 4.3.1")
    await first.send(".\r\n")
    assert (await first.read_reply()).code == 250
    assert budget.held == 0 and budget.held_by == {}


async def test_a_message_larger_than_the_read_window_arrives_intact(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp()
    body = "Subject: big\r\n\r\n" + "".join(f"{n:08d}.{LINE}" for n in range(40_000))
    client = await env.session()
    _, final = await client.send_mail("a@example.com", ["b@example.com"], body)
    assert final.code == 250
    [message] = env.messages
    assert message.data.endswith(body.encode())


async def test_the_budget_is_listener_wide_and_refused_in_a_peer_block(
    start_smtp: StartSmtp,
) -> None:
    with pytest.raises(ConfigError, match="max_data_buffered"):
        await start_smtp(peer={"10.0.0.0/8": {"max_data_buffered": "1 MiB"}})


async def test_an_unfinished_data_section_buffers_at_most_two_windows_and_one_read(
    start_smtp: StartSmtp,
) -> None:
    # 800 KB of DATA without its end: what is past two read windows leaves the stream
    # buffer (charged to the budget), so the session's unread input stays bounded.
    from kumocore.reception.smtp.data import READ_WINDOW

    env = await start_smtp(max_data_buffered="4 MiB", max_message_size="4 MiB")
    client = await unfinished_data(env)
    (session,) = env.listener.sessions
    buffered = len(session._reader._buffer)  # type: ignore[attr-defined]
    assert buffered < 2 * READ_WINDOW + 256 * 1024  # uvloop reads at most 256 KiB at once
    held = data_budget(session).held
    assert held >= 800_000 - buffered - 2 * READ_WINDOW  # the rest was taken and charged
    await client.send(".\r\n")
    assert (await client.read_reply()).code == 250
    assert data_budget(session).held == 0
