"""kumocore.config.vault: KumoMTA's HashiCorp Vault key source, read from a real HTTP
server speaking Vault's KV v2 read API (tests/support/vault_server.py)."""

from __future__ import annotations

import time

import pytest

from kumocore import ConfigError
from kumocore.config import vault
from kumocore.config.vault import parse_vault_source, read_vault_secret, then_with_secrets
from kumocore.policy.secrets import load_secret, load_secret_or_vault
from tests.support.vault_server import silent_server, vault_server


async def test_reads_the_key_field_of_a_kv2_secret_with_the_token_header() -> None:
    async with vault_server() as server:
        server.put("dkim/example.com", key="PEM TEXT", other="x")
        data = await read_vault_secret(server.source("dkim/example.com"), "test")
    assert data == b"PEM TEXT"
    assert server.requests == [("/v1/secret/data/dkim/example.com", server.token)]


async def test_vault_key_names_another_field() -> None:
    async with vault_server() as server:
        server.put("smtp", password="hunter2", key="not this one")
        source = server.source("smtp", vault_key="password")
        assert await read_vault_secret(source, "test") == b"hunter2"


async def test_a_secret_without_the_field_is_an_error_naming_path_and_field() -> None:
    async with vault_server() as server:
        server.put("custom_key", key="value")
        source = server.source("custom_key", vault_key="custom_field")
        with pytest.raises(
            ConfigError, match="vault secret at custom_key does not contain key 'custom_field'"
        ):
            await read_vault_secret(source, "test")


async def test_address_and_token_fall_back_to_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with vault_server() as server:
        server.put("from-env", key="yes")
        monkeypatch.setenv("VAULT_ADDR", server.address)
        monkeypatch.setenv("VAULT_TOKEN", server.token)
        source = {"vault_mount": "secret", "vault_path": "from-env"}
        assert await read_vault_secret(source, "test") == b"yes"
        # An explicit token wins over $VAULT_TOKEN.
        with pytest.raises(ConfigError, match="HTTP 403"):
            await read_vault_secret({**source, "vault_token": "wrong"}, "test")


async def test_without_address_or_environment_the_error_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    source = {"vault_mount": "secret", "vault_path": "p", "vault_token": "t"}
    with pytest.raises(ConfigError, match=r"vault_address was not specified and \$VAULT_ADDR"):
        await read_vault_secret(source, "test")
    source = {"vault_mount": "secret", "vault_path": "p", "vault_address": "http://127.0.0.1:1"}
    with pytest.raises(ConfigError, match=r"vault_token was not specified and \$VAULT_TOKEN"):
        await read_vault_secret(source, "test")


async def test_a_bad_token_names_mount_path_and_403_but_not_the_token() -> None:
    async with vault_server() as server:
        server.put("dkim/a", key="k")
        source = server.source("dkim/a", vault_token="hvs.WRONG-TOKEN-123")
        with pytest.raises(ConfigError) as info:
            await read_vault_secret(source, "kumo.secrets.load")
    text = str(info.value)
    assert "vault_mount=secret, vault_path=dkim/a" in text
    assert "HTTP 403" in text and "permission denied" in text
    assert "WRONG-TOKEN" not in text and server.token not in text


async def test_a_missing_path_is_a_404_naming_it() -> None:
    async with vault_server() as server:
        with pytest.raises(ConfigError, match=r"vault_path=nowhere.*HTTP 404"):
            await read_vault_secret(server.source("nowhere"), "test")


async def test_a_server_that_never_answers_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault, "READ_TIMEOUT", 0.3)
    async with silent_server() as address:
        source = {"vault_mount": "secret", "vault_path": "slow", "vault_address": address,
                  "vault_token": "t"}  # fmt: skip
        started = time.monotonic()
        with pytest.raises(ConfigError, match=r"vault_path=slow timed out after 0.3s"):
            await read_vault_secret(source, "test")
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_reply_over_the_size_bound_is_refused(chunked: bool) -> None:
    async with vault_server() as server:
        server.oversized[("secret", "big")] = vault.MAX_RESPONSE  # plus the JSON around it
        if chunked:
            server.chunked.update({("secret", "big"), ("secret", "fits")})
        server.oversized[("secret", "fits")] = vault.MAX_RESPONSE - 100
        with pytest.raises(ConfigError, match=r"vault_path=big is larger than 1048576 bytes"):
            await read_vault_secret(server.source("big"), "test")
        assert (
            len(await read_vault_secret(server.source("fits"), "test")) == vault.MAX_RESPONSE - 100
        )


async def test_a_redirect_is_not_followed_so_the_token_goes_nowhere_else() -> None:
    async with vault_server() as server:
        server.put("real", key="k")
        server.redirects[("secret", "moved")] = "/v1/secret/data/real"
        with pytest.raises(ConfigError, match=r"vault_path=moved failed: HTTP 307"):
            await read_vault_secret(server.source("moved"), "test")
    assert [path for path, _ in server.requests] == ["/v1/secret/data/moved"]


async def test_an_address_that_is_not_http_is_refused() -> None:
    source = {"vault_mount": "s", "vault_path": "p", "vault_address": "ftp://127.0.0.1/",
              "vault_token": "t"}  # fmt: skip
    with pytest.raises(ConfigError, match="vault_address must be an http:// or https:// URL"):
        await read_vault_secret(source, "test")


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        ({"vault_path": "p"}, "needs vault_mount"),
        ({"vault_mount": "secret"}, "needs vault_path"),
        (
            {"vault_mount": "secret", "vault_path": "p", "vault_port": 1},
            "unknown field 'vault_port'",
        ),
        ({"vault_mount": "secret", "vault_path": 3}, "vault_path must be a string"),
        (
            {"vault_mount": "s", "vault_path": "p", "vault_token": 12345},
            "vault_token must be a string, got <hidden>",
        ),
    ],
)
def test_a_malformed_table_is_refused_naming_the_field(
    table: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ConfigError, match=complaint):
        parse_vault_source(table, "test")


def test_file_and_inline_sources_are_resolved_at_once() -> None:
    assert then_with_secrets("t", [{"key_data": "x"}], lambda s: s) == {"key_data": "x"}
    assert load_secret_or_vault({"key_data": "abc"}) == b"abc"


async def test_secrets_load_of_a_vault_source_is_an_awaitable_of_its_bytes() -> None:
    async with vault_server() as server:
        server.put("passwd", key="s3cret")
        pending = load_secret_or_vault(server.source("passwd"))
        assert await pending == b"s3cret"
        # Synchronous readers (options used while a connection is made) refuse it.
        with pytest.raises(ConfigError, match="read synchronously"):
            load_secret(server.source("passwd"))
