"""``kumo.nats.connect``'s ``auth`` key sources in HashiCorp Vault: read before connecting
to a real nats-server that requires a token (the Vault side is the KV v2 stand-in)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kumocore import ConfigError
from kumocore.loghooks.nats_client import nats_connect
from tests.support.brokers import NATS, Broker, available, free_port
from tests.support.vault_server import vault_server

pytestmark = pytest.mark.skipif(not available(NATS), reason="nats-server is not installed")

NATS_TOKEN = "nats-secret-token"


@pytest.fixture
def nats_with_token(tmp_path: Path) -> Iterator[Broker]:
    port = free_port()
    argv = [NATS, "-a", "127.0.0.1", "-p", str(port), "--auth", NATS_TOKEN]
    broker = Broker(argv, dict(os.environ), port, tmp_path / "nats.log").wait(20)
    yield broker
    broker.stop()


async def test_a_token_kept_in_vault_authenticates_to_nats(nats_with_token: Broker) -> None:
    servers = [f"127.0.0.1:{nats_with_token.port}"]
    async with vault_server() as vault:
        vault.put("nats", token=NATS_TOKEN)
        client = await nats_connect(
            {"servers": servers, "auth": {"token": vault.source("nats", vault_key="token")}}
        )
        await client.close()
        vault.put("nats", token="not-the-token")
        with pytest.raises(Exception, match=r"(?i)authorization"):
            await nats_connect(
                {"servers": servers, "auth": {"token": vault.source("nats", vault_key="token")}}
            )


async def test_a_vault_error_names_the_auth_field_and_the_path(nats_with_token: Broker) -> None:
    async with vault_server() as vault:
        source = vault.source("missing")
        with pytest.raises(ConfigError, match=r"auth.token: .*vault_path=missing.*HTTP 404"):
            await nats_connect(
                {"servers": [f"127.0.0.1:{nats_with_token.port}"], "auth": {"token": source}}
            )
