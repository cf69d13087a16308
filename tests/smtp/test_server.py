"""Listener lifecycle: several listeners, started from a policy, closed gracefully."""

from __future__ import annotations

import asyncio
import smtplib
from typing import Any

import pytest

from bench.common.smtp_client import RawSmtpClient
from kumocore import ConfigError, hookimpl
from kumocore.mail.message import Message
from kumocore.testing.plugin import MakeNode
from tests.smtp.conftest import StartSmtp


async def test_several_listeners_run_at_once(start_smtp: StartSmtp) -> None:
    first = await start_smtp(hostname="mx1.example")
    second = await start_smtp(hostname="mx2.example", banner="second")
    assert first.port != second.port
    assert str(await (await first.client()).read_reply()) == "220 mx1.example kumocore ESMTP"
    assert str(await (await second.client()).read_reply()) == "220 mx2.example second"


class StartsListeners:
    @hookimpl
    def kumo_init(self, kumo: Any) -> None:
        kumo.start_esmtp_listener(listen="127.0.0.1:0", hostname="policy.example")
        kumo.start_http_listener({"listen": "127.0.0.1:0"})


async def test_server_starts_the_listeners_a_policy_defines(make_node: MakeNode) -> None:
    node = await make_node(plugins=[StartsListeners()], listen=False, entrypoints=False)
    esmtp, http = node.server.listeners
    client = await RawSmtpClient.connect(esmtp.address[1])
    assert str(await client.read_reply()) == "220 policy.example kumocore ESMTP"
    assert http.address[1] > 0


async def test_closing_tells_idle_clients_and_refuses_new_ones(start_smtp: StartSmtp) -> None:
    env = await start_smtp()
    idle = await env.session()
    await env.listener.close(timeout=1.0)
    assert str(await idle.read_reply()) == "421 4.3.2 mx.kumocore.test shutting down"
    assert await idle.closed()
    try:
        late = await RawSmtpClient.connect(env.port, timeout=1.0)
    except OSError:
        return
    assert await late.closed(timeout=1.0)


class Slow:
    @hookimpl
    async def kumo_smtp_server_message_received(self, message: Message) -> None:
        await asyncio.sleep(0.3)


async def test_closing_lets_a_message_in_processing_finish(start_smtp: StartSmtp) -> None:
    env = await start_smtp(Slow())
    client = await env.session()
    await client.command("MAIL FROM:<a@example.com>")
    await client.command("RCPT TO:<b@example.com>")
    await client.command("DATA")
    await client.send("Subject: in flight\r\n\r\n.\r\n")
    await asyncio.sleep(0.1)
    closing = asyncio.create_task(env.listener.close(timeout=2.0))
    assert (await client.read_reply()).code == 250
    assert str(await client.read_reply()) == "421 4.3.2 mx.kumocore.test shutting down"
    await closing
    assert len(env.messages) == 1


async def test_stdlib_smtplib_client_sends_a_message(start_smtp: StartSmtp) -> None:
    env = await start_smtp()

    def send() -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", env.port, local_hostname="std.client") as client:
            return client.sendmail("a@example.com", ["b@example.com"],
                                   b"Subject: stdlib\r\n\r\n.dot line\r\nend\r\n")

    assert await asyncio.to_thread(send) == {}
    assert env.messages[0].data.endswith(b"Subject: stdlib\r\n\r\n.dot line\r\nend\r\n")


async def test_unsafe_unsupported_options_are_refused(start_smtp: StartSmtp) -> None:
    with pytest.raises(ConfigError, match="tls_required_client_ca"):
        await start_smtp(tls_required_client_ca={"key_data": "x"})


async def test_client_vanishing_after_the_final_dot_does_not_lose_the_message(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(Slow())
    client = await env.session()
    await client.command("MAIL FROM:<a@example.com>")
    await client.command("RCPT TO:<b@example.com>")
    await client.command("DATA")
    await client.send("Subject: fire and forget\r\n\r\n.\r\n")
    client.writer.transport.abort()
    await asyncio.sleep(0.6)
    [message] = env.messages
    assert len(env.reception.meta_spool) == 1
    assert message.get_first_named_header_value("Subject") == "fire and forget"
