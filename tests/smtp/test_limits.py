"""Listener limits: recipients, message size (early and late), line length, messages per
connection and concurrent connections."""

from __future__ import annotations

import asyncio

from tests.reception.harness import HOSTNAME
from tests.smtp.conftest import StartSmtp


async def test_recipients_over_the_limit_get_451(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_recipients_per_message=3)
    client = await env.session()
    rcpts, final = await client.send_mail(
        "a@example.com", [f"r{i}@example.com" for i in range(4)], "Subject: x\r\n\r\ny\r\n")
    assert [str(r) for r in rcpts[3:]] == ["452 4.5.3 too many recipients"]
    assert final.code == 250
    assert len(env.messages) == 3


async def test_declared_size_over_the_limit_is_refused_at_mail_from(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_message_size=1000)
    client = await env.session()
    assert str(await client.command("MAIL FROM:<a@example.com> SIZE=1001")) == \
        "552 5.3.4 message size exceeds fixed maximum message size"
    assert (await client.command("MAIL FROM:<a@example.com> SIZE=1000")).code == 250


async def test_oversized_data_is_read_to_the_end_then_refused(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_message_size=1000)
    client = await env.session()
    body = "Subject: big\r\n\r\n" + "x" * 70 + "\r\n"
    _, final = await client.send_mail("a@example.com", ["b@example.com"], body * 40)
    assert str(final) == "552 5.3.4 message too big"
    assert env.messages == []
    # The session is still in step: the next transaction works.
    _, final = await client.send_mail("a@example.com", ["b@example.com"], "Subject: ok\r\n\r\n")
    assert final.code == 250


async def test_message_far_over_the_limit_does_not_desync(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_message_size=4096)
    client = await env.session()
    _, final = await client.send_mail(
        "a@example.com", ["b@example.com"], b"Subject: huge\r\n\r\n" + b"y" * 500 * 1024)
    assert final.code == 552
    assert (await client.command("NOOP")).code == 250


async def test_line_over_998_octets_gets_500_after_the_data(start_smtp: StartSmtp) -> None:
    env = await start_smtp()
    client = await env.session()
    _, final = await client.send_mail(
        "a@example.com", ["b@example.com"], "Subject: long\r\n\r\n" + "z" * 999 + "\r\n")
    assert str(final) == "500 5.2.3 line too long"
    _, final = await client.send_mail(
        "a@example.com", ["b@example.com"], "Subject: max\r\n\r\n" + "z" * 998 + "\r\n")
    assert final.code == 250
    # A transparency dot does not count against the limit.
    _, final = await client.send_mail(
        "a@example.com", ["b@example.com"], "Subject: dot\r\n\r\n." + "." * 998 + "\r\n")
    assert final.code == 250
    assert len(env.messages) == 2


async def test_line_length_limit_is_configurable(start_smtp: StartSmtp) -> None:
    env = await start_smtp(line_length_hard_limit=100)
    client = await env.session()
    _, final = await client.send_mail(
        "a@example.com", ["b@example.com"], "Subject: x\r\n\r\n" + "w" * 101 + "\r\n")
    assert str(final) == "500 5.2.3 line too long"


async def test_empty_message_is_accepted(start_smtp: StartSmtp) -> None:
    env = await start_smtp()
    client = await env.session()
    await client.command("MAIL FROM:<a@example.com>")
    await client.command("RCPT TO:<b@example.com>")
    assert (await client.command("DATA")).code == 354
    assert (await client.command(".")).code == 250
    # Only the trace headers: no header/body separator, no content.
    assert b"\r\n\r\n" not in env.messages[0].data


async def test_messages_per_connection_limit(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_messages_per_connection=2)
    client = await env.session()
    _, final = await client.send_mail("a@example.com", ["b@example.com"], "Subject: 1\r\n\r\n")
    assert final.code == 250
    assert (await client.command("MAIL FROM:<a@example.com>")).code == 250
    assert (await client.command("RCPT TO:<c@example.com>")).code == 250
    assert str(await client.command("RCPT TO:<d@example.com>")) == \
        "452 4.5.3 too many recipients on this connection"
    assert (await client.command("DATA")).code == 354
    assert (await client.command("Subject: 2\r\n\r\n.")).code == 250
    await client.command("MAIL FROM:<a@example.com>")
    assert str(await client.command("RCPT TO:<e@example.com>")) == \
        f"421 4.5.3 {HOSTNAME} too many recipients on this connection"
    assert await client.closed()
    assert len(env.messages) == 2


async def test_connections_over_max_connections_get_421(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_connections=2)
    first, second = await env.session(), await env.session()
    third = await env.client()
    assert str(await third.read_reply()) == \
        f"421 4.3.2 {HOSTNAME} too many concurrent sessions. Try later"
    assert await third.closed()
    await first.command("QUIT")
    await first.closed()
    await asyncio.sleep(0.05)
    fourth = await env.client()
    assert (await fourth.read_reply()).code == 220
    assert (await second.command("NOOP")).code == 250
