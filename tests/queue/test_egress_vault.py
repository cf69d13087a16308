"""Outbound AUTH with the password in HashiCorp Vault (a KV v2 stand-in): read when
routing asks for the path's configuration, kept for five minutes, never while a
connection waits; a Vault that cannot answer defers the messages, naming the secret."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common.auth_mx import AuthMx
from bench.common.dns_server import TestDnsServer
from kumocore.config import EgressPathConfig, EgressSource, egress_vault
from tests.queue.harness import Bench
from tests.queue.test_routing import ROUTING_ZONES, _auth_route
from tests.support.vault_server import VaultServer, vault_server

PROXY = {"name": "s", "socks5_proxy_server": "127.0.0.1:1080",
         "socks5_proxy_source_address": "127.0.10.1", "socks5_proxy_username": "u"}


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    with TestDnsServer(dict(ROUTING_ZONES)) as server:
        yield server


@pytest.fixture
async def auth_mx(tmp_path: Path) -> AsyncIterator[AuthMx]:
    server = await AuthMx("127.0.0.4", "mx.auth.test", {"alice": "s3cret"}, tmp_path).start()
    yield server
    await server.stop()


@pytest.fixture
async def vault() -> AsyncIterator[VaultServer]:
    egress_vault.forget_secrets()
    async with vault_server() as server:
        yield server
    egress_vault.forget_secrets()


def _path(vault: VaultServer) -> dict[str, Any]:
    return {"enable_tls": "Required", "smtp_auth_plain_username": "alice",
            "smtp_auth_plain_password": vault.source("smtp/alice", vault_key="password")}


async def test_the_auth_password_comes_from_vault_and_is_read_once_for_many_messages(
    make_bench: Any, auth_mx: AuthMx, vault: VaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(auth_mx.ca_file))
    vault.put("smtp/alice", password="s3cret")
    bench: Bench = await make_bench(queue=_auth_route(auth_mx), path=_path(vault))
    for i in range(5):
        await bench.inject(f"rcpt{i}@example.com")
    await bench.wait_for_records("Delivery", 5)
    assert auth_mx.state.auth_attempts[0] == ("alice", True)
    assert len(vault.requests) == 1


async def test_a_vault_that_refuses_defers_the_messages_naming_the_secret(
    make_bench: Any, auth_mx: AuthMx, vault: VaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(auth_mx.ca_file))
    bench: Bench = await make_bench(queue=_auth_route(auth_mx), path=_path(vault))
    await bench.inject("rcpt@example.com")  # nothing at smtp/alice: Vault answers 404
    (record,) = await bench.wait_for_records("TransientFailure", 1)
    content = record["response"]["content"]
    assert "vault_mount=secret, vault_path=smtp/alice" in content
    assert vault.token not in content
    assert auth_mx.state.auth_attempts == [] and auth_mx.state.messages == []


def test_vault_sources_are_taken_for_the_egress_keys_and_passwords() -> None:
    source = {"vault_mount": "secret", "vault_path": "smtp"}
    path = EgressPathConfig.from_options({"smtp_auth_plain_password": source,
                                          "tls_certificate": source, "tls_private_key": source})
    assert path.smtp_auth_plain_password == source
    proxy = EgressSource.from_options({**PROXY, "socks5_proxy_password": source})
    assert proxy.socks5_proxy_password == source


async def test_a_proxy_password_in_vault_is_inlined_into_the_source(
    vault: VaultServer,
) -> None:
    vault.put("proxy", key="pw")
    source = EgressSource.from_options({**PROXY, "socks5_proxy_password": vault.source("proxy")})
    read = await egress_vault.read_egress_vault_sources(source, "egress source 's'")
    assert read.socks5_proxy_password == {"key_data": b"pw"}
    again = await egress_vault.read_egress_vault_sources(source, "egress source 's'")
    assert again == read and len(vault.requests) == 1
