"""kumo.crypto.aes_encrypt_block / aes_decrypt_block from Lua policies: NIST SP 800-38A
known answers, KumoMTA's output forms (a string out of encrypt, a BinaryResult out of
decrypt), key sources and refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .support import Recorder, load, make_runtime

# NIST SP 800-38A, F.1.1 / F.1.5 / F.2.1: keys, the first plaintext block, the first
# ciphertext blocks of ECB-AES128, ECB-AES256 and CBC-AES128 (IV 00..0f).
KEY_128 = "2b7e151628aed2a6abf7158809cf4f3c"
KEY_256 = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
PLAIN = "6bc1bee22e409f96e93d7e117393172a"
ECB_128 = "3ad77bb40d7a3660a89ecaf32466ef97"
ECB_256 = "f3eed1bdb5d2a03c064b5a7e3db181f8"
CBC_IV = "000102030405060708090a0b0c0d0e0f"
CBC_128 = "7649abac8119b246cee98e9b12e9197d"


async def marks_of(tmp_path: Path, source: str, value: Any = None) -> list[Any]:
    recorder = Recorder()
    recorder.value = value
    await load(tmp_path, source, recorder=recorder)
    return recorder.marks


async def test_ecb_matches_nist_and_pads_a_whole_block(tmp_path: Path) -> None:
    marks = await marks_of(
        tmp_path,
        f"""\
        local kumo = require 'kumo'
        local plain = kumo.encode.hex_decode '{PLAIN}'
        for _, hex in ipairs {{ '{KEY_128}', '{KEY_256}' }} do
          local key = {{ key = {{ key_data = kumo.encode.hex_decode(hex) }} }}
          local sealed = kumo.crypto.aes_encrypt_block('Ecb', plain, key)
          kumo.test.mark({{ type(sealed), #sealed, kumo.encode.hex_encode(sealed:sub(1, 16)) }})
          kumo.test.mark(kumo.crypto.aes_decrypt_block('Ecb', sealed, key).hex)
        end
    """,
    )
    assert marks == [["string", 32, ECB_128], PLAIN, ["string", 32, ECB_256], PLAIN]


async def test_cbc_puts_a_fresh_iv_first_and_decrypts_nist_ciphertext(tmp_path: Path) -> None:
    key = bytes.fromhex(KEY_128)
    # The PKCS#7 block that follows NIST's one-block plaintext, chained on NIST's block.
    pad = Cipher(algorithms.AES(key), modes.CBC(bytes.fromhex(CBC_128))).encryptor()
    nist = CBC_IV + CBC_128 + pad.update(b"\x10" * 16).hex()
    marks = await marks_of(
        tmp_path,
        f"""\
        local kumo = require 'kumo'
        local key = {{ key = {{ key_data = kumo.encode.hex_decode '{KEY_128}' }} }}
        local plain = kumo.encode.hex_decode '{PLAIN}'
        local one = kumo.crypto.aes_encrypt_block('Cbc', plain, key)
        local two = kumo.crypto.aes_encrypt_block('Cbc', plain, key)
        kumo.test.mark({{ #one, one:sub(1, 16) ~= two:sub(1, 16) }})
        kumo.test.mark(kumo.encode.hex_encode(one))
        kumo.test.mark(kumo.crypto.aes_decrypt_block('Cbc', one, key).hex)
        kumo.test.mark(kumo.crypto.aes_decrypt_block('Cbc',
          kumo.encode.hex_decode '{nist}', key).hex)
    """,
    )
    assert marks[0] == [48, True]
    sealed = bytes.fromhex(marks[1])
    opener = Cipher(algorithms.AES(key), modes.CBC(sealed[:16])).decryptor()
    assert opener.update(sealed[16:]) + opener.finalize() == bytes.fromhex(PLAIN) + b"\x10" * 16
    assert marks[2:] == [PLAIN, PLAIN]


async def test_binary_plaintext_and_binary_keys_round_trip(tmp_path: Path) -> None:
    # KumoMTA's own checks: a 32-byte binary key, a 16-character text key, non-UTF-8 data.
    marks = await marks_of(
        tmp_path,
        f"""\
        local kumo = require 'kumo'
        local binary_key = {{ key = {{ key_data = kumo.encode.hex_decode '{KEY_256}' }} }}
        local text_key = {{ key = {{ key_data = '1234567890abcdef' }} }}
        local data = string.char(0, 1, 2, 3, 0xff, 0xfe, 0xfd, 0xfc, 0x80, 0x90, 0xa0, 0xb0)
        for _, mode in ipairs {{ 'Cbc', 'Ecb' }} do
          for _, key in ipairs {{ binary_key, text_key }} do
            for _, text in ipairs {{ 'Hello, World!123', data, '' }} do
              local sealed = kumo.crypto.aes_encrypt_block(mode, text, key)
              kumo.test.mark(kumo.crypto.aes_decrypt_block(mode, sealed, key).bytes == text)
            end
          end
        end
    """,
    )
    assert marks == [True] * 12


async def test_reference_example_with_a_key_file(tmp_path: Path) -> None:
    # KumoMTA's example, as its code runs it: the encrypted value is a string (the page's
    # `encrypted.bytes` is nil there too) and the decrypted one a BinaryResult.
    key_file = tmp_path / "key.bin"
    key_file.write_bytes(bytes(range(32)))
    marks = await marks_of(
        tmp_path,
        f"""\
        local kumo = require 'kumo'
        local message = 'secret message'
        local encrypted = kumo.crypto.aes_encrypt_block('Cbc', message, {{
          key = '{key_file}',
        }})
        kumo.test.mark({{ type(encrypted), encrypted.bytes == nil }})
        local decrypted = kumo.crypto.aes_decrypt_block('Cbc', encrypted, {{
          key = '{key_file}',
        }})
        assert(decrypted.bytes == message)
        kumo.test.mark({{ decrypted.bytes, decrypted.hex, decrypted.base64 }})
    """,
    )
    assert marks == [
        ["string", True],
        ["secret message", b"secret message".hex(), "c2VjcmV0IG1lc3NhZ2U="],
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            "kumo.crypto.aes_encrypt_block('Cbc', 'x', { key = { key_data = ('k'):rep(24) } })",
            "Key length must be 16 or 32 bytes, got 24",
        ),
        (
            "kumo.crypto.aes_encrypt_block('cbc', 'x', KEY)",
            "unknown ALGORITHM 'cbc', expected 'Ecb' or 'Cbc'",
        ),
        (
            "kumo.crypto.aes_encrypt_block('Cbc', 'x', { key_data = 'k' })",
            "KEY: unknown field 'key_data', expected key",
        ),
        ("kumo.crypto.aes_encrypt_block('Cbc', 'x', {})", "KEY: missing field 'key'"),
        ("kumo.crypto.aes_encrypt_block('Cbc', nil, KEY)", "PLAINTEXT must be a string"),
        (
            "kumo.crypto.aes_encrypt_block('Cbc', 'x', { key = {"
            " vault_mount = 'secret', vault_path = 'keys/some-path', vault_address = 'x:',"
            " vault_token = 't' } })",
            "key: vault_address must be an http:// or https:// URL, got 'x:'"
            " (vault_mount=secret, vault_path=keys/some-path)",
        ),
        (
            "kumo.crypto.aes_encrypt_block('Ecb', 'x', { key = '/nonexistent/key.bin' })",
            "cannot read key file '/nonexistent/key.bin': No such file or directory",
        ),
        (
            "kumo.crypto.aes_decrypt_block('Cbc', 'short', KEY)",
            "ciphertext must be prefixed by iv with len at least 16",
        ),
        (
            "kumo.crypto.aes_decrypt_block('Ecb', string.rep('x', 20), KEY)",
            "20 bytes, not a whole number of 16-byte blocks",
        ),
        (
            "kumo.crypto.aes_decrypt_block('Ecb', kumo.crypto.aes_encrypt_block('Ecb', 'x', KEY),"
            " { key = { key_data = 'fedcba0987654321' } })",
            "bad padding",
        ),
    ],
)
async def test_refusals_name_the_function_and_the_reason(
    tmp_path: Path, call: str, message: str
) -> None:
    marks = await marks_of(
        tmp_path,
        f"""\
        local kumo = require 'kumo'
        KEY = {{ key = {{ key_data = '1234567890abcdef' }} }}
        local ok, err = pcall(function() return {call} end)
        kumo.test.mark({{ ok, tostring(err) }})
    """,
    )
    ok, error = marks[0]
    assert not ok
    assert "kumo.crypto.aes_" in error and message in error


def test_python_policies_get_bytes_and_a_binary_result() -> None:
    kumo = make_runtime().kumo
    key = {"key": {"key_data": bytes.fromhex(KEY_128)}}
    sealed = kumo.crypto.aes_encrypt_block("Ecb", bytes.fromhex(PLAIN), key)
    assert isinstance(sealed, bytes) and sealed[:16].hex() == ECB_128
    assert kumo.crypto.aes_decrypt_block("Ecb", sealed, key).hex == PLAIN
    cbc = kumo.crypto.aes_encrypt_block("Cbc", "text", key)
    assert kumo.crypto.aes_decrypt_block("Cbc", cbc, key).bytes == b"text"
