"""Per-connection certificates kept in HashiCorp Vault, read again while the node runs: a
``peer`` block's (read at start, then every five minutes in the background, as the
listener's own) and one named by ``smtp_server_get_dynamic_parameters`` (read when the
answer comes, through a five-minute single-flight cache). A real listener on 127.0.0.1,
clients bound to 127.0.0.5, the KV v2 stand-in; the periods are advanced with fake clocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bench.common.smtp_client import RawSmtpClient
from kumocore.config import listener_vault
from kumocore.reception.tls_reload import RELOAD_AFTER, ListenerContexts
from kumocore.testing.node import Node, start_node
from tests.smtp.test_tls_listener_renewal import FakeClock, wait_for_reloads
from tests.smtp.test_tls_listener_renewal import clock as clock  # the fixture
from tests.smtp.test_tls_per_connection import make_pair, served_name
from tests.smtp.test_tls_vault import lua_table
from tests.support.vault_server import VaultServer, vault_server

CLIENT = "127.0.0.5"  # untrusted, matched by the peer block
CONNECTIONS = 40


@pytest.fixture
async def vault() -> AsyncIterator[VaultServer]:
    async with vault_server() as server:
        yield server


@pytest.fixture
def secrets_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    """The dynamic answers' secret cache on a fake clock, emptied before and after."""
    fake = FakeClock()
    listener_vault.CONNECTION_SECRETS.forget()
    monkeypatch.setattr(listener_vault.CONNECTION_SECRETS, "clock", fake)
    yield fake
    listener_vault.CONNECTION_SECRETS.forget()


def put_pair(vault: VaultServer, directory: Path, name: str, path: str = "tls/pair") -> None:
    """A new certificate for ``name`` and its key, stored at ``path`` (cert, key)."""
    (directory / name).mkdir()
    pair = make_pair(directory / name, name)
    vault.put(path, cert=Path(pair["tls_certificate"]).read_text(),
              key=Path(pair["tls_private_key"]).read_text())  # fmt: skip


def pair_options(vault: VaultServer, path: str = "tls/pair") -> str:
    cert = lua_table(vault.source(path, vault_key="cert"))
    key = lua_table(vault.source(path, vault_key="key"))
    return f"tls_certificate = {cert}, tls_private_key = {key}"


def peer_block_policy(vault: VaultServer) -> str:
    return f"""
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.start_esmtp_listener {{
    listen = '127.0.0.1:0', hostname = 'mx.test',
    peer = {{ ['{CLIENT}'] = {{ {pair_options(vault)} }} }},
  }}
end)
"""


def dynamic_policy(vault: VaultServer) -> str:
    return f"""
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.start_esmtp_listener {{ listen = '127.0.0.1:0', hostname = 'mx.test' }}
end)
kumo.on('smtp_server_get_dynamic_parameters', function(listener, conn_meta)
  return {{ {pair_options(vault)} }}
end)
"""


async def served_names(node: Node, count: int = CONNECTIONS) -> set[str]:
    """The certificates served to ``count`` concurrent STARTTLS clients."""
    names = await asyncio.gather(*(served_name(node.smtp_port, source=CLIENT)
                                   for _ in range(count)))  # fmt: skip
    return set(names)


# --- a peer block's certificate in Vault ----------------------------------------------


async def test_a_peer_block_secret_is_read_once_per_period_however_many_connections(
    tmp_path: Path, vault: VaultServer, clock: tuple[FakeClock, ListenerContexts]
) -> None:
    fake, contexts = clock
    put_pair(vault, tmp_path, "peer.example")
    node = await start_node(peer_block_policy(vault), esmtp=None, http=None)
    try:
        assert len(vault.requests) == 2  # certificate and key, at start
        assert await served_names(node) == {"peer.example"}
        assert len(vault.requests) == 2  # no connection read Vault
        fake.now += RELOAD_AFTER + 1
        # Due now: every connection is served at once, and one read starts among them.
        assert await served_names(node) == {"peer.example"}
        await wait_for_reloads(contexts, 1)
        assert await served_names(node) == {"peer.example"}
        assert len(vault.requests) == 4
        assert contexts.reloads == 1
    finally:
        await node.stop()


async def test_a_peer_block_secret_renewed_in_vault_is_served_after_the_period(
    tmp_path: Path, vault: VaultServer, clock: tuple[FakeClock, ListenerContexts]
) -> None:
    fake, contexts = clock
    put_pair(vault, tmp_path, "peer.example")
    node = await start_node(peer_block_policy(vault), esmtp=None, http=None)
    try:
        assert await served_name(node.smtp_port, source=CLIENT) == "peer.example"
        put_pair(vault, tmp_path, "renewed.example")
        fake.now += RELOAD_AFTER - 1
        assert await served_name(node.smtp_port, source=CLIENT) == "peer.example"
        assert contexts.reloads == 0  # not due yet
        fake.now += 2
        assert await served_name(node.smtp_port, source=CLIENT) == "peer.example"  # starts it
        await wait_for_reloads(contexts, 1)
        assert await served_name(node.smtp_port, source=CLIENT) == "renewed.example"
        # The listener's own (self-signed) certificate is not the block's.
        assert await served_name(node.smtp_port, source="127.0.0.1") == "mx.test"
    finally:
        await node.stop()


async def test_a_peer_block_secret_that_cannot_be_read_again_keeps_the_last_good_one(
    tmp_path: Path, vault: VaultServer, clock: tuple[FakeClock, ListenerContexts]
) -> None:
    fake, contexts = clock
    put_pair(vault, tmp_path, "peer.example")
    node = await start_node(peer_block_policy(vault), esmtp=None, http=None)
    try:
        assert await served_name(node.smtp_port, source=CLIENT) == "peer.example"
        good, vault.token = vault.token, "hvs.rotated"  # the node's token now gets a 403
        fake.now += RELOAD_AFTER + 1
        with capture_logs() as logs:
            assert await served_name(node.smtp_port, source=CLIENT) == "peer.example"
            async with asyncio.timeout(5):
                while not any("cannot be read again" in e["event"] for e in logs):
                    await asyncio.sleep(0.01)
        assert contexts.reloads == 0
        assert await served_names(node) == {"peer.example"}
        [entry] = [e for e in logs if "cannot be read again" in e["event"]]
        assert "vault_path=tls/pair" in entry["error"] and "HTTP 403" in entry["error"]
        assert good not in entry["error"]
        # Vault answers again: the next period reads it.
        vault.token = good
        put_pair(vault, tmp_path, "recovered.example")
        fake.now += RELOAD_AFTER + 1
        await served_name(node.smtp_port, source=CLIENT)
        await wait_for_reloads(contexts, 1)
        assert await served_name(node.smtp_port, source=CLIENT) == "recovered.example"
    finally:
        await node.stop()


# --- smtp_server_get_dynamic_parameters naming a Vault certificate --------------------


async def test_a_dynamic_vault_certificate_is_read_once_for_many_connections(
    tmp_path: Path, vault: VaultServer, secrets_clock: FakeClock
) -> None:
    put_pair(vault, tmp_path, "dynamic.example")
    node = await start_node(dynamic_policy(vault), esmtp=None, http=None)
    try:
        assert vault.requests == []  # nothing read before a connection asks
        assert await served_names(node) == {"dynamic.example"}
        assert len(vault.requests) == 2  # certificate and key, once for all of them
        assert listener_vault.CONNECTION_SECRETS.reads == 2
    finally:
        await node.stop()


async def test_a_dynamic_vault_certificate_renewed_is_served_after_the_period(
    tmp_path: Path, vault: VaultServer, secrets_clock: FakeClock
) -> None:
    put_pair(vault, tmp_path, "dynamic.example")
    node = await start_node(dynamic_policy(vault), esmtp=None, http=None)
    try:
        assert await served_name(node.smtp_port, source=CLIENT) == "dynamic.example"
        put_pair(vault, tmp_path, "renewed.example")
        secrets_clock.now += RELOAD_AFTER - 1
        assert await served_name(node.smtp_port, source=CLIENT) == "dynamic.example"
        secrets_clock.now += 2
        assert await served_names(node) == {"renewed.example"}
        assert len(vault.requests) == 4
    finally:
        await node.stop()


async def test_a_dynamic_vault_certificate_that_cannot_be_read_refuses_with_421(
    tmp_path: Path, vault: VaultServer, secrets_clock: FakeClock
) -> None:
    # As KumoMTA, which fails the session with "4.3.0 technical difficulties" when the
    # connection's TLS acceptor cannot be built; kumocore knows it before the greeting.
    node = await start_node(dynamic_policy(vault), esmtp=None, http=None)  # nothing stored
    try:
        with capture_logs() as logs:
            client = await RawSmtpClient.connect(node.smtp_port, source=CLIENT)
            reply = str(await client.read_reply())
            assert reply == "421 4.3.0 mx.test technical difficulties"
            assert await client.closed()
        [entry] = [e for e in logs if e["event"].startswith("smtp_server_get_dynamic")]
        assert "vault_path=tls/pair" in entry["error"] and "HTTP 404" in entry["error"]
        assert vault.token not in entry["error"]
        # A failure is not kept: once the secret is there, the next client is served.
        put_pair(vault, tmp_path, "dynamic.example")
        assert await served_name(node.smtp_port, source=CLIENT) == "dynamic.example"
    finally:
        await node.stop()
