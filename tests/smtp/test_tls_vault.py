"""Listener certificates and keys kept in HashiCorp Vault (KumoMTA's Vault key source in
``tls_certificate``/``tls_private_key``): read when the policy's ``init`` defines the
listener, from a real KV v2 stand-in, and served over STARTTLS and HTTPS."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kumocore.reception.tls_reload import RELOAD_AFTER as CONTEXT_TTL
from kumocore.reception.tls_reload import ListenerContexts
from kumocore.testing.node import start_node
from tests.smtp.test_tls_listener_renewal import FakeClock, https_served_name, wait_for_reloads
from tests.smtp.test_tls_listener_renewal import clock as clock  # the fixture
from tests.smtp.test_tls_per_connection import make_pair, served_name
from tests.support.vault_server import VaultServer, vault_server


def lua_table(fields: dict[str, str]) -> str:
    return "{ " + ", ".join(f"{k} = '{v}'" for k, v in fields.items()) + " }"


def listener_policy(vault: VaultServer, esmtp_extra: str = "") -> str:
    cert = lua_table(vault.source("tls/mail.example.com.cert"))
    key = lua_table(vault.source("tls/mail.example.com.key", vault_key="private_key"))
    return f"""
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.start_esmtp_listener {{
    listen = '127.0.0.1:0', tls_certificate = {cert}, tls_private_key = {key}, {esmtp_extra}
  }}
  kumo.start_http_listener {{
    listen = '127.0.0.1:0', use_tls = true, tls_certificate = {cert}, tls_private_key = {key},
  }}
end)
"""


async def test_esmtp_and_https_listeners_serve_the_certificate_kept_in_vault(
    tmp_path: Path,
) -> None:
    pair = make_pair(tmp_path, "vault.example")
    async with vault_server() as vault:
        vault.put("tls/mail.example.com.cert", key=Path(pair["tls_certificate"]).read_text())
        vault.put("tls/mail.example.com.key", private_key=Path(pair["tls_private_key"]).read_text())
        node = await start_node(listener_policy(vault), esmtp=None, http=None)
    try:
        # Vault is stopped by now: the listeners hold what they read at start.
        assert await served_name(node.smtp_port) == "vault.example"
        assert await https_served_name(int(node.http_url.rpartition(":")[2])) == "vault.example"
    finally:
        await node.stop()
    assert len(vault.requests) == 4  # certificate and key, for each listener


async def test_a_via_block_certificate_in_vault_is_served_to_its_local_address(
    tmp_path: Path,
) -> None:
    main = make_pair(tmp_path, "vault.example")
    via = make_pair(tmp_path, "via.example")
    async with vault_server() as vault:
        vault.put("tls/mail.example.com.cert", key=Path(main["tls_certificate"]).read_text())
        vault.put("tls/mail.example.com.key", private_key=Path(main["tls_private_key"]).read_text())
        vault.put("tls/via", cert=Path(via["tls_certificate"]).read_text(),
                  key=Path(via["tls_private_key"]).read_text())  # fmt: skip
        block = (
            "via = { ['127.0.0.1'] = { tls_certificate = "
            + lua_table(vault.source("tls/via", vault_key="cert"))
            + ", tls_private_key = "
            + lua_table(vault.source("tls/via"))
            + " } },"
        )
        node = await start_node(listener_policy(vault, block), esmtp=None, http=None)
    try:
        assert await served_name(node.smtp_port) == "via.example"
    finally:
        await node.stop()


async def test_a_listener_whose_vault_token_is_refused_fails_the_start_naming_the_path(
    tmp_path: Path,
) -> None:
    async with vault_server() as vault:
        vault.token = "hvs.the-right-one"
        policy = listener_policy(vault).replace("hvs.the-right-one", "hvs.a-wrong-one")
        with pytest.raises(Exception) as info:
            await start_node(policy, esmtp=None, http=None)
    text = str(info.value)
    assert "vault_path=tls/mail.example.com.cert" in text and "HTTP 403" in text
    assert "hvs.a-wrong-one" not in text


async def test_a_certificate_renewed_in_vault_is_served_after_five_minutes_without_a_restart(
    tmp_path: Path,
    clock: tuple[FakeClock, ListenerContexts],
) -> None:
    # As KumoMTA reads a Vault secret again when its acceptor cache entry expires.
    fake, contexts = clock
    first = make_pair(tmp_path, "vault.example")
    async with vault_server() as vault:
        vault.put("tls/mail.example.com.cert", key=Path(first["tls_certificate"]).read_text())
        vault.put("tls/mail.example.com.key",
                  private_key=Path(first["tls_private_key"]).read_text())  # fmt: skip
        node = await start_node(listener_policy(vault), esmtp=None, http=None)
        try:
            assert await served_name(node.smtp_port) == "vault.example"
            (tmp_path / "next").mkdir()
            renewed = make_pair(tmp_path / "next", "renewed.example")
            vault.put("tls/mail.example.com.cert",
                      key=Path(renewed["tls_certificate"]).read_text())  # fmt: skip
            vault.put("tls/mail.example.com.key",
                      private_key=Path(renewed["tls_private_key"]).read_text())  # fmt: skip
            fake.now += CONTEXT_TTL + 1
            assert await served_name(node.smtp_port) == "vault.example"  # starts the read
            await wait_for_reloads(contexts, 1)
            assert await served_name(node.smtp_port) == "renewed.example"
            # A broken secret at the next period: the last good certificate stays.
            vault.put("tls/mail.example.com.cert", key="not a certificate")
            fake.now += CONTEXT_TTL + 1
            await served_name(node.smtp_port)
            await asyncio.sleep(0.5)
            assert await served_name(node.smtp_port) == "renewed.example"
        finally:
            await node.stop()
