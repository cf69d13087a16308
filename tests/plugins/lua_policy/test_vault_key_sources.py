"""KumoMTA's HashiCorp Vault key source (``{ vault_mount, vault_path, ... }``) in the Lua
functions that take a KEYSOURCE, against a real KV v2 stand-in on 127.0.0.1: the Lua code
reads as if the key were inline, while the read is awaited on the event loop."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kumocore.dkim.keys import public_key_record
from kumocore.mail.message import Message
from tests.support.vault_server import VaultServer, vault_server

from .support import DATA, Recorder, load, make_runtime

AES_KEY = "0123456789abcdef0123456789abcdef"  # 32 bytes: AES-256


async def marks_of(tmp_path: Path, source: str, value: Any) -> list[Any]:
    recorder = Recorder()
    recorder.value = value
    await load(tmp_path, source, recorder=recorder)
    return recorder.marks


def vault_table(server: VaultServer, path: str, **extra: str) -> str:
    """The Lua table literal of a Vault key source on ``server``."""
    fields = {**server.source(path), **extra}
    return "{ " + ", ".join(f"{k} = '{v}'" for k, v in fields.items()) + " }"


async def test_hmac_with_a_vault_key_equals_hmac_with_the_same_key_inline(
    tmp_path: Path,
) -> None:
    async with vault_server() as server:
        server.put("hmac", key="s3cret-key")
        marks = await marks_of(
            tmp_path,
            f"""\
            local kumo = require 'kumo'
            local from_vault = kumo.digest.hmac_sha256({vault_table(server, "hmac")}, 'message')
            local inline = kumo.digest.hmac_sha256({{ key_data = 's3cret-key' }}, 'message')
            kumo.test.mark({{ from_vault.hex, inline.hex }})
            """,
            None,
        )
    expected = hmac.new(b"s3cret-key", b"message", hashlib.sha256).hexdigest()
    assert marks == [[expected, expected]]
    assert [path for path, _ in server.requests] == ["/v1/secret/data/hmac"]


async def test_secrets_load_reads_vault_and_reports_a_bad_token_by_path_and_status(
    tmp_path: Path,
) -> None:
    async with vault_server() as server:
        server.put("example.com-passwd", password="hunter2")
        source = vault_table(server, "example.com-passwd", vault_key="password")
        bad = vault_table(server, "example.com-passwd", vault_token="hvs.bad")
        marks = await marks_of(
            tmp_path,
            f"""\
            local kumo = require 'kumo'
            kumo.test.mark(kumo.secrets.load({source}))
            local ok, err = pcall(kumo.secrets.load, {bad})
            kumo.test.mark({{ ok, tostring(err) }})
            """,
            None,
        )
    assert marks[0] == "hunter2"
    ok, err = marks[1]
    assert not ok
    assert "vault_path=example.com-passwd" in err and "HTTP 403" in err
    assert "hvs.bad" not in err and server.token not in err


async def test_secrets_load_uses_vault_addr_and_vault_token_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with vault_server() as server:
        server.put("env", key="from-env")
        monkeypatch.setenv("VAULT_ADDR", server.address)
        monkeypatch.setenv("VAULT_TOKEN", server.token)
        marks = await marks_of(
            tmp_path,
            """\
            local kumo = require 'kumo'
            kumo.test.mark(kumo.secrets.load { vault_mount = 'secret', vault_path = 'env' })
            """,
            None,
        )
    assert marks == ["from-env"]


async def test_python_policy_awaits_secrets_load_of_a_vault_source() -> None:
    kumo = make_runtime().kumo
    async with vault_server() as server:
        server.put("py", key="abc")
        assert await kumo.secrets.load(server.source("py")) == b"abc"


async def test_aes_with_a_vault_key_decrypts_what_the_inline_key_encrypted(
    tmp_path: Path,
) -> None:
    async with vault_server() as server:
        server.put("keys/some-path", key=AES_KEY)
        marks = await marks_of(
            tmp_path,
            f"""\
            local kumo = require 'kumo'
            local vault = {{ key = {vault_table(server, "keys/some-path")} }}
            local inline = {{ key = {{ key_data = '{AES_KEY}' }} }}
            local sealed = kumo.crypto.aes_encrypt_block('Cbc', 'secret message', vault)
            kumo.test.mark(kumo.crypto.aes_decrypt_block('Cbc', sealed, inline).bytes)
            sealed = kumo.crypto.aes_encrypt_block('Ecb', 'other', inline)
            kumo.test.mark(kumo.crypto.aes_decrypt_block('Ecb', sealed, vault).bytes)
            """,
            None,
        )
    assert marks == ["secret message", "other"]


async def test_aws_sign_v4_with_vault_keys_equals_the_inline_signature(tmp_path: Path) -> None:
    async with vault_server() as server:
        server.put("aws", access="AKIDEXAMPLE", secret="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        marks = await marks_of(
            tmp_path,
            f"""\
            local kumo = require 'kumo'
            local function sign(access, secret)
              return kumo.crypto.aws_sign_v4 {{
                access_key = access, secret_key = secret, region = 'us-east-1',
                service = 'service', method = 'GET', uri = '/',
                headers = {{ host = 'example.amazonaws.com' }},
                timestamp = '2015-08-30T12:36:00Z',
              }}.authorization
            end
            kumo.test.mark(sign({vault_table(server, "aws", vault_key="access")},
                                {vault_table(server, "aws", vault_key="secret")}))
            kumo.test.mark(sign({{ key_data = 'AKIDEXAMPLE' }},
                                {{ key_data = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' }}))
            """,
            None,
        )
    assert marks[0] == marks[1] and "Credential=AKIDEXAMPLE/20150830/" in marks[0]


ACL = """
[[acl."http_listener/*/api/inject"]]
allow = true
privileges = ["POST"]
identity.Authenticated = {}
"""


async def test_load_acl_map_reads_the_map_from_vault(tmp_path: Path) -> None:
    async with vault_server() as server:
        server.put("acl", key=ACL)
        marks = await marks_of(
            tmp_path,
            f"""\
            local kumo = require 'kumo'
            local map = kumo.aaa.load_acl_map({vault_table(server, "acl")})
            kumo.test.mark(map:get('http_listener/*/api/inject') ~= nil)
            kumo.test.mark(map:get('http_listener/*/api/other') == nil)
            """,
            None,
        )
    assert marks == [True, True]


DKIM_POLICY = """\
local kumo = require 'kumo'
kumo.on('smtp_server_message_received', function(msg)
  msg:dkim_sign(kumo.dkim.rsa_sha256_signer {
    domain = 'examplecorp.com', selector = 'sel', key = kumo.test.value(),
    headers = { 'From', 'To', 'Subject' },
  })
end)
"""


async def test_a_lua_dkim_signer_with_a_vault_key_signs_what_dkimpy_verifies(
    tmp_path: Path,
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    recorder = Recorder()
    async with vault_server() as server:
        server.put("dkim/examplecorp.com", key=pem.decode())
        recorder.value = server.source("dkim/examplecorp.com")
        runtime, _ = await load(tmp_path, DKIM_POLICY, recorder=recorder)
        messages = [Message("a@examplecorp.com", "bob@gmail.com", DATA) for _ in range(3)]
        for msg in messages:
            await runtime.hooks.smtp_server_message_received(msg, {})
    record = public_key_record(key).encode()
    for msg in messages:
        assert dkim.verify(msg.data, dnsfunc=lambda name, timeout=5: record)
    assert len(server.requests) == 1  # the signer (and its key) is cached for its ttl
