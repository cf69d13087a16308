"""DKIM signers whose key is in HashiCorp Vault (``key = { vault_mount, vault_path }``):
read from a real KV v2 stand-in, kept with the signer for its ttl, one read per signer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kumocore import ConfigError
from kumocore.dkim import Signer, make_dkim_functions
from kumocore.dkim.policy import SignerCache
from tests.core.dkim.conftest import MESSAGE, KeyFile, Verify
from tests.support.vault_server import VaultServer, vault_server


def options(server: VaultServer, path: str, **extra: Any) -> dict[str, Any]:
    return {
        "domain": "example.com",
        "selector": "sel",
        "headers": ["From", "To", "Subject"],
        "key": server.source(path),
        **extra,
    }


async def test_rsa_signer_with_a_vault_key_signs_what_dkimpy_verifies(
    keys: dict[str, KeyFile], dkimpy_verify: Verify
) -> None:
    fn = make_dkim_functions()["dkim.rsa_sha256_signer"]
    async with vault_server() as server:
        server.put("dkim/example.com/sel", key=keys["rsa2048-pkcs1"].pem.decode())
        signer = await fn(**options(server, "dkim/example.com/sel"))
    assert isinstance(signer, Signer) and signer.key_path is None
    assert dkimpy_verify(signer.sign(MESSAGE) + MESSAGE, keys["rsa2048-pkcs1"].record)


async def test_ed25519_signer_reads_the_named_vault_key_field(
    keys: dict[str, KeyFile], dkimpy_verify: Verify
) -> None:
    fn = make_dkim_functions()["dkim.ed25519_signer"]
    async with vault_server() as server:
        server.put("dkim/ed", private_key=keys["ed25519"].pem.decode(), key="not a key")
        opts = options(server, "dkim/ed")
        opts["key"]["vault_key"] = "private_key"
        signer = await fn(**opts)
    assert dkimpy_verify(signer.sign(MESSAGE) + MESSAGE, keys["ed25519"].record)


async def test_the_signer_is_kept_for_its_ttl_and_concurrent_callers_share_one_read(
    keys: dict[str, KeyFile],
) -> None:
    cache = SignerCache()
    async with vault_server() as server:
        server.put("k", key=keys["rsa1024-pkcs1"].pem.decode())
        opts = options(server, "k")
        first = await asyncio.gather(*(cache.get_vault("rsa-sha256", opts) for _ in range(20)))
        again = await cache.get_vault("rsa-sha256", opts)
        assert len(server.requests) == 1
        assert all(s is first[0] for s in [*first, again])
        short = await cache.get_vault("rsa-sha256", {**opts, "ttl": "1ms"})
        await asyncio.sleep(0.01)
        assert await cache.get_vault("rsa-sha256", {**opts, "ttl": "1ms"}) is not short
        assert len(server.requests) == 3


async def test_a_vault_error_fails_the_signer_and_is_not_cached(
    keys: dict[str, KeyFile],
) -> None:
    fn = make_dkim_functions()["dkim.rsa_sha256_signer"]
    async with vault_server() as server:
        with pytest.raises(ConfigError, match=r"vault_path=later.*HTTP 404"):
            await fn(**options(server, "later"))
        server.put("later", key=keys["rsa1024-pkcs1"].pem.decode())
        assert isinstance(await fn(**options(server, "later")), Signer)


async def test_a_bad_option_fails_before_vault_is_asked() -> None:
    fn = make_dkim_functions()["dkim.rsa_sha256_signer"]
    async with vault_server() as server:
        with pytest.raises(ConfigError, match="header_canonicalization"):
            await fn(**options(server, "k", header_canonicalization="relaxed"))
    assert server.requests == []


async def test_a_secret_that_is_not_a_key_is_refused_naming_its_vault_path() -> None:
    fn = make_dkim_functions()["dkim.rsa_sha256_signer"]
    async with vault_server() as server:
        server.put("dkim/broken", key="not a PEM key")
        with pytest.raises(ConfigError, match=r"vault_mount=secret, vault_path=dkim/broken"):
            await fn(**options(server, "dkim/broken"))
