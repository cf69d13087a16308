"""Listener secrets inlined from Vault remember where they came from, so that the
five-minute reload reads them again; renewals age out of that memory instead of piling
up (a secret rotated on every read would otherwise add an entry every five minutes)."""

from __future__ import annotations

import pytest

from kumocore.config import listener_vault
from tests.support.vault_server import vault_server


async def test_renewed_secrets_age_out_and_the_current_one_keeps_being_refreshed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(listener_vault, "_ORIGINS", {})
    monkeypatch.setattr(listener_vault, "MAX_ORIGINS", 3)
    async with vault_server() as vault:
        vault.put("tls/cert", key="v0")
        source = await listener_vault.refreshed(
            await listener_vault._inline(vault.source("tls/cert"), "test"), "test")
        for version in range(1, 10):
            vault.put("tls/cert", key=f"v{version}")
            source = await listener_vault.refreshed(source, "test")
            assert source == {"key_data": f"v{version}".encode()}
        assert len(listener_vault._ORIGINS) == 3
        assert listener_vault.from_vault(source)
