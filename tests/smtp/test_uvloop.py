"""``kumocore serve`` runs on uvloop, whose transports are not asyncio classes: the
listener must behave the same there (timeouts, STARTTLS, shutdown)."""

from __future__ import annotations

import asyncio

import uvloop  # the [fast] extra: installed by scripts/setup.sh

from bench.common.smtp_client import RawSmtpClient
from kumocore.config import EsmtpListenerConfig
from kumocore.reception.smtp.server import start_esmtp_listener
from tests.reception.harness import HOSTNAME, make_reception


async def scenario() -> None:
    reception = await make_reception()
    config = EsmtpListenerConfig.from_options(
        {"listen": "127.0.0.1:0", "hostname": HOSTNAME, "client_timeout": "0.3s"})
    listener = await start_esmtp_listener(reception.runtime, config)
    port = listener.address[1]
    try:
        client = await RawSmtpClient.connect(port)
        await client.hello()
        assert (await client.starttls()).code == 220
        await client.command("EHLO tls.test")
        _, final = await client.send_mail("a@example.com", ["b@example.com"], "Subject: u\r\n\r\n")
        assert final.code == 250
        assert str(await client.read_reply(timeout=3)) == f"421 4.3.2 {HOSTNAME} idle too long"
        assert await client.closed()
        idle = await RawSmtpClient.connect(port)
        await idle.hello()
    finally:
        await listener.close(timeout=1.0)
    assert str(await idle.read_reply()) == f"421 4.3.2 {HOSTNAME} shutting down"
    await client.close()
    await idle.close()
    await reception.close()
    assert len(reception.messages) == 1


def test_listener_on_uvloop_times_out_starts_tls_and_shuts_down() -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
