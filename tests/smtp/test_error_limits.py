"""Refused and non-progress commands are bounded per connection, and so are the
Rejection records they produce (issue 14, findings 2 and 4)."""

from __future__ import annotations

import asyncio

from bench.common.smtp_client import RawSmtpClient
from tests.reception.harness import HOSTNAME
from tests.smtp.conftest import StartSmtp

PEER = "127.0.0.5"


async def _replies_until_close(client: RawSmtpClient, timeout: float = 10.0) -> list[str]:
    replies: list[str] = []
    while True:
        try:
            replies.append(str(await client.read_reply(timeout)))
        except ConnectionError:  # the end, or a reset
            return replies


async def test_pipelined_out_of_sequence_commands_end_the_session_after_the_error_limit(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp()
    client = await env.session(PEER)
    # 20,000 RCPT TO without MAIL FROM, in one write, as the attacker sent them.
    await client.send("RCPT TO:<x@example.com>\r\n" * 20_000)
    replies = await _replies_until_close(client)
    # Closing on unread input makes the kernel reset the connection, so the client may
    # not see every reply; what it sees is in order and nothing comes after the 421.
    expected = ["503 5.5.0 MAIL FROM must be issued first"] * 20 + \
        [f"421 4.7.0 {HOSTNAME} too many errors"]
    assert replies == expected[:len(replies)]
    records = await env.reception.records("Rejection", settle=0.2)
    assert [f"{r.response.code} {r.response.content}" for r in records] == \
        [text.replace(" 5.5.0", "").replace(" 4.7.0", "") for text in expected]
    assert not env.listener.sessions


async def test_rejection_records_are_aggregated_after_the_first_fifty(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(max_command_errors=1000)
    client = await env.session(PEER)
    for _ in range(5):
        await client.send("RCPT TO:<x@example.com>\r\n" * 40)
        for _ in range(40):
            assert (await client.read_reply()).code == 503
    assert str(await client.command("QUIT")).startswith("221")
    await client.closed()
    records = await env.reception.records("Rejection", settle=0.3)
    assert len(records) == 51
    summary = records[-1].response.content
    assert "and 150 more rejections on this connection" in summary
    assert records[-1].response.code == 503


async def test_too_many_recipients_are_not_errors_up_to_the_overshoot_limit(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(max_recipients_per_message=2)
    client = await env.session()
    rcpts, final = await client.send_mail(
        "a@example.com", [f"r{i}@example.com" for i in range(40)], "Subject: x\r\n\r\ny\r\n")
    assert [r.code for r in rcpts] == [250, 250] + [452] * 38
    assert final.code == 250
    assert len(env.messages) == 2


async def test_errors_are_forgiven_once_a_message_is_accepted(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_command_errors=3)
    client = await env.session()
    for _ in range(3):
        for _ in range(2):
            assert (await client.command("DATA")).code == 503
        _, final = await client.send_mail("a@example.com", ["b@example.com"], "Subject: x\r\n\r\n")
        assert final.code == 250
    assert (await client.command("NOOP")).code == 250


async def test_noop_forever_is_ended_by_the_junk_command_limit(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_junk_commands=10, max_command_errors=5)
    client = await env.session(PEER)  # the EHLO is junk number 1
    await client.send("NOOP\r\n" * 1000)
    replies = await _replies_until_close(client)
    # 9 NOOPs within the junk limit, 5 more counted as errors, then the end.
    assert replies == ["250 2.0.0 the goggles do nothing"] * 14 + \
        [f"421 4.7.0 {HOSTNAME} too many errors"]


async def test_session_is_ended_at_its_duration_cap(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_session_duration="0.5s")
    client = await env.session(PEER)
    start = asyncio.get_running_loop().time()
    # A client that stays busy (never idle long enough for client_timeout) is still cut.
    while True:
        try:
            reply = await client.command("MAIL FROM:<a@example.com>")
            if reply.code == 250:
                reply = await client.command("RSET")
        except ConnectionError:
            break
        if reply.code != 250:
            assert str(reply) == f"421 4.4.2 {HOSTNAME} session time limit reached"
            assert await client.closed()
            break
        await asyncio.sleep(0.05)
    elapsed = asyncio.get_running_loop().time() - start
    assert 0.3 < elapsed < 5
    assert not env.listener.sessions


async def test_session_cap_interrupts_a_slow_data(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_session_duration="0.5s")
    client = await env.session()
    assert (await client.command("MAIL FROM:<a@example.com>")).code == 250
    assert (await client.command("RCPT TO:<b@example.com>")).code == 250
    assert (await client.command("DATA")).code == 354
    await client.send("Subject: drip\r\n")
    reply = await client.read_reply(timeout=5)
    assert str(reply) == f"421 4.4.2 {HOSTNAME} session time limit reached"
    assert env.messages == []
