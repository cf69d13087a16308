"""Fixtures: real ESMTP listeners on 127.0.0.1:0 over a recording reception pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from bench.common.smtp_client import RawSmtpClient
from kumocore.config import EsmtpListenerConfig
from kumocore.reception.smtp.server import EsmtpListener, start_esmtp_listener
from tests.reception.harness import HOSTNAME, Reception, make_reception


@dataclass
class SmtpEnv:
    """A running listener and the reception behind it."""

    listener: EsmtpListener
    reception: Reception
    clients: list[RawSmtpClient] = field(default_factory=list)  # closed at teardown

    @property
    def port(self) -> int:
        return self.listener.address[1]

    async def client(self, source: str = "127.0.0.1") -> RawSmtpClient:
        client = await RawSmtpClient.connect(self.port, source=source)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        await self.listener.close(timeout=1.0)
        await self.reception.close()

    async def session(self, source: str = "127.0.0.1") -> RawSmtpClient:
        """A client that has read the greeting and said EHLO."""
        client = await self.client(source)
        await client.hello()
        return client

    @property
    def messages(self) -> list[Any]:
        return self.reception.messages


StartSmtp = Callable[..., Awaitable[SmtpEnv]]


@pytest.fixture
async def start_smtp() -> AsyncIterator[StartSmtp]:
    """``await start_smtp(policy, ..., max_message_size=1000)``: listener options as
    keyword arguments, policy objects (with ``@hookimpl`` methods) as positionals."""
    envs: list[SmtpEnv] = []

    async def start(*policies: object, **options: Any) -> SmtpEnv:
        reception = await make_reception(*policies)
        config = EsmtpListenerConfig.from_options(
            {"listen": "127.0.0.1:0", "hostname": HOSTNAME, **options})
        listener = await start_esmtp_listener(reception.runtime, config)
        env = SmtpEnv(listener, reception)
        envs.append(env)
        return env

    yield start
    for env in envs:
        await env.close()


@pytest.fixture
async def smtp(start_smtp: StartSmtp) -> SmtpEnv:
    """A listener with default options and no policy."""
    return await start_smtp()
