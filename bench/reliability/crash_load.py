"""Load for the crash experiment: SMTP and HTTP-inject clients writing a :class:`Ledger`."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.common.smtp_client import RawSmtpClient
from bench.common.world import CRASH_DOMAIN


@dataclass
class Ledger:
    """What every client was told, per recipient."""

    accepted: dict[str, str] = field(default_factory=dict)  # recipient -> "OK ids=..."
    refused: dict[str, str] = field(default_factory=dict)  # recipient -> the reply
    unanswered: set[str] = field(default_factory=set)  # the dot was sent, no reply came
    connect_failures: int = 0
    transactions: int = 0

    @property
    def sent(self) -> int:
        return len(self.accepted) + len(self.refused) + len(self.unanswered)


class RecipientMaker:
    """Unique recipients: ``<kind>.c<n>@domain``; kinds by share (permfail, tempfail-once)."""

    def __init__(
        self,
        domain: str = CRASH_DOMAIN,
        *,
        permfail: float = 0.1,
        tempfail: float = 0.1,
        seed: int = 0,
        prefix: str = "c",
    ) -> None:
        self.domain = domain
        self.permfail, self.tempfail = permfail, tempfail
        self.rng = random.Random(seed)
        self.prefix = prefix
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        roll = self.rng.random()
        kind = (
            "permfail"
            if roll < self.permfail
            else "tempfail-once"
            if roll < self.permfail + self.tempfail
            else "ok"
        )
        return f"{kind}.{self.prefix}{self.count}@{self.domain}"


def message_body(recipient: str, size: int = 600) -> bytes:
    head = (
        f"From: <load@src.test>\r\nTo: <{recipient}>\r\nSubject: reliability {recipient}\r\n"
        f"X-Rel-Id: {recipient}\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog 0123456789.\r\n"
    return head + line * max(1, size // len(line))


_CLIENT_ERRORS = (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError, ValueError)


async def transaction(client: RawSmtpClient, recipient: str, ledger: Ledger, size: int) -> None:
    """One MAIL/RCPT/DATA; the outcome goes into ``ledger``."""
    ledger.transactions += 1
    reply = await client.command("MAIL FROM:<load@src.test>")
    if reply.code != 250:
        ledger.refused[recipient] = str(reply)
        await client.command("RSET")
        return
    reply = await client.command(f"RCPT TO:<{recipient}>")
    if reply.code != 250:
        ledger.refused[recipient] = str(reply)
        await client.command("RSET")
        return
    reply = await client.command("DATA")
    if reply.code != 354:
        ledger.refused[recipient] = str(reply)
        return
    ledger.unanswered.add(recipient)
    await client.send(message_body(recipient, size) + b".\r\n")
    reply = await client.read_reply(timeout=30)
    ledger.unanswered.discard(recipient)
    if reply.code == 250:
        ledger.accepted[recipient] = reply.text
    else:
        ledger.refused[recipient] = str(reply)


async def load_worker(
    port: int,
    ledger: Ledger,
    next_recipient: Callable[[], str],
    stop: asyncio.Event,
    *,
    per_connection: int = 20,
    size: int = 600,
    source: str = "127.0.0.1",
    pause: float = 0.0,
) -> None:
    """Send messages until ``stop`` is set, reconnecting whenever the server goes away."""
    while not stop.is_set():
        try:
            client = await RawSmtpClient.connect(port, source=source, timeout=2.0)
        except _CLIENT_ERRORS:
            ledger.connect_failures += 1
            await asyncio.sleep(0.05)
            continue
        try:
            greeting = await client.read_reply(timeout=10)
            if greeting.code != 220:
                await asyncio.sleep(0.05)
                continue
            await client.command("EHLO load.test")
            for _ in range(per_connection):
                if stop.is_set():
                    break
                await transaction(client, next_recipient(), ledger, size)
                if pause:
                    await asyncio.sleep(pause)
            with contextlib.suppress(*_CLIENT_ERRORS):
                await client.command("QUIT")
        except _CLIENT_ERRORS:
            await asyncio.sleep(0.02)
        finally:
            with contextlib.suppress(Exception):
                await client.close()


async def inject_worker(
    http_port: int, ledger: Ledger, next_recipient: Callable[[], str], stop: asyncio.Event
) -> None:
    """Inject messages through ``POST /api/inject/v1`` until ``stop``; a 200 with
    ``success_count == 1`` is an acknowledgement, like a 250."""
    import aiohttp

    url = f"http://127.0.0.1:{http_port}/api/inject/v1"
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while not stop.is_set():
            recipient = next_recipient()
            body = {
                "envelope_sender": "load@src.test",
                "content": message_body(recipient).decode(),
                "recipients": [{"email": recipient}],
            }
            ledger.transactions += 1
            ledger.unanswered.add(recipient)
            try:
                async with session.post(url, json=body) as response:
                    answer = await response.json(content_type=None)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
                ledger.connect_failures += 1
                await asyncio.sleep(0.05)
                continue
            ledger.unanswered.discard(recipient)
            if response.status == 200 and answer.get("success_count") == 1:
                ledger.accepted[recipient] = "200 inject"
            else:
                ledger.refused[recipient] = f"{response.status} {answer}"
