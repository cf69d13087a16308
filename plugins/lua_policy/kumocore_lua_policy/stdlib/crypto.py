"""``kumo.crypto.*``: AES block encryption and AWS Signature Version 4 request signing.

AES, as KumoMTA's source has it (its reference pages say otherwise, see below):

* ``aes_encrypt_block(ALGORITHM, PLAINTEXT, { key = KEYSOURCE })`` returns the ciphertext
  as a (binary) Lua string: for ``'Ecb'`` the PKCS#7-padded blocks, for ``'Cbc'`` a fresh
  random 16-byte IV followed by them.
* ``aes_decrypt_block(ALGORITHM, CIPHERTEXT, { key = KEYSOURCE })`` reverses that and
  returns a BinaryResult (``.bytes``, ``.hex``...), as the digests do.

The key is 16 or 32 bytes (AES-128 or AES-256), from a file name, ``{ key_data = ... }``
or HashiCorp Vault (``{ vault_mount = ..., vault_path = ... }``: the function then gives
Lua an awaitable, :func:`kumocore.config.vault.then_with_secrets`).
KumoMTA's reference pages call the encrypted value a BinaryResult (``encrypted.bytes``) and
the decrypted one a string; its code, which policies run against, does the reverse.

``kumo.crypto.aws_sign_v4`` is in :mod:`.sigv4`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from kumocore import ConfigError, lua_type_name
from kumocore.config.key_source import key_source_bytes as read_key_source
from kumocore.config.vault import then_with_secrets
from kumocore_lua_policy.byte_strings import takes_bytes
from kumocore_lua_policy.stdlib.arguments import string_arg
from kumocore_lua_policy.stdlib.codec import BinaryResult

_ALGORITHMS = ("Ecb", "Cbc")
_BLOCK = 16
_KEY_SIZES = (16, 32)
#: A key file larger than this is refused unread: keys are tens of bytes, and a name such
#: as ``/dev/zero`` (or a log file) would otherwise be read whole into memory.
MAX_KEY_FILE = 64 * 1024


def key_source_bytes(who: str, what: str, source: Any) -> bytes:
    """The bytes a file or inline KumoMTA KeySource names (a key file of at most
    :data:`MAX_KEY_FILE` bytes); a Vault source is read before (:func:`then_with_secrets`)."""
    return read_key_source(source, who, what=what, limit=MAX_KEY_FILE,
                           sync="this call signs synchronously")  # fmt: skip


def _algorithm(who: str, value: Any) -> str:
    if value not in _ALGORITHMS:
        raise ConfigError(f"{who}: unknown ALGORITHM {value!r}, expected 'Ecb' or 'Cbc'")
    return str(value)


def _key_source(who: str, config: Any) -> Any:
    """The KEYSOURCE of the ``{ key = KEYSOURCE }`` argument."""
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"{who}: KEY must be a table like {{ key = '/path/to/key.bin' }}, "
            f"got {lua_type_name(config)}"
        )
    unknown = sorted(str(k) for k in config if k != "key")
    if unknown:
        raise ConfigError(f"{who}: KEY: unknown field {unknown[0]!r}, expected key")
    if config.get("key") is None:
        raise ConfigError(f"{who}: KEY: missing field 'key'")
    return config["key"]


def _key(who: str, source: Any) -> bytes:
    """The AES key a (file or inline) key source holds."""
    key = key_source_bytes(who, "key", source)
    if len(key) not in _KEY_SIZES:
        raise ConfigError(f"{who}: Key length must be 16 or 32 bytes, got {len(key)}")
    return key


def _data(who: str, what: str, value: Any) -> bytes:
    # mlua reads a string argument as its bytes, and a number as its text.
    if isinstance(value, bytes):
        return value
    return string_arg(who, what, value).encode("utf-8", "surrogateescape")


@takes_bytes
def aes_encrypt_block(algorithm: Any, plaintext: Any, config: Any) -> Any:
    """`kumo.crypto.aes_encrypt_block(ALGORITHM, PLAINTEXT, { key = KEYSOURCE })`:
    PLAINTEXT encrypted with AES-128 or AES-256 (a 16- or 32-byte key from a file name,
    `{ key_data = ... }` or HashiCorp Vault) and PKCS#7 padding. `'Ecb'` returns the
    ciphertext, `'Cbc'` a random 16-byte IV followed by the ciphertext, as a binary string
    (as KumoMTA's code does; its reference page says a BinaryResult)."""
    who = "kumo.crypto.aes_encrypt_block"
    mode_name = _algorithm(who, algorithm)
    data = _data(who, "PLAINTEXT", plaintext)
    return then_with_secrets(
        who,
        [_key_source(who, config)],
        lambda source: _encrypt(mode_name, data, _key(who, source)),
        ("key",),
    )


def _encrypt(mode_name: str, data: bytes, key: bytes) -> bytes:
    padder = padding.PKCS7(_BLOCK * 8).padder()
    padded = padder.update(data) + padder.finalize()
    if mode_name == "Ecb":
        encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        return encryptor.update(padded) + encryptor.finalize()
    iv = os.urandom(_BLOCK)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(padded) + encryptor.finalize()


@takes_bytes
def aes_decrypt_block(algorithm: Any, ciphertext: Any, config: Any) -> Any:
    """`kumo.crypto.aes_decrypt_block(ALGORITHM, CIPHERTEXT, { key = KEYSOURCE })`: the
    plaintext of what `aes_encrypt_block` gave (for `'Cbc'` the 16-byte IV first), as a
    BinaryResult: read it with `.bytes`. A wrong key or damaged data is an error."""
    who = "kumo.crypto.aes_decrypt_block"
    mode_name = _algorithm(who, algorithm)
    data = _data(who, "CIPHERTEXT", ciphertext)
    return then_with_secrets(
        who,
        [_key_source(who, config)],
        lambda source: _decrypt(mode_name, data, _key(who, source)),
        ("key",),
    )


def _decrypt(mode_name: str, data: bytes, key: bytes) -> BinaryResult:
    who = "kumo.crypto.aes_decrypt_block"
    if mode_name == "Cbc":
        if len(data) < _BLOCK:
            raise ConfigError(
                f"{who}: ciphertext must be prefixed by iv with len at least {_BLOCK}"
            )
        mode: modes.CBC | modes.ECB = modes.CBC(data[:_BLOCK])
        data = data[_BLOCK:]
    else:
        mode = modes.ECB()
    if not data or len(data) % _BLOCK:
        raise ConfigError(
            f"{who}: decryption failed with AES {mode_name}: the ciphertext is "
            f"{len(data)} bytes, not a whole number of 16-byte blocks"
        )
    decryptor = Cipher(algorithms.AES(key), mode).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(_BLOCK * 8).unpadder()
    try:
        return BinaryResult(unpadder.update(padded) + unpadder.finalize())
    except ValueError:
        raise ConfigError(
            f"{who}: decryption failed with AES {mode_name}: bad padding "
            "(a wrong key, or data that was not encrypted this way)"
        ) from None


def crypto_functions() -> dict[str, Callable[..., Any]]:
    return {
        "crypto.aes_encrypt_block": aes_encrypt_block,
        "crypto.aes_decrypt_block": aes_decrypt_block,
    }
