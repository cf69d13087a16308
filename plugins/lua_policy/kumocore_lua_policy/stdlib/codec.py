"""``kumo.digest.*`` (hashes, HMACs) and ``kumo.encode.*`` (base32/64, hex, charsets).

Digests return a :class:`BinaryResult` whose fields give the bytes in several encodings
(``d.hex``, ``d.base64``...), and whose string form is the hex, as KumoMTA documents.
Digest arguments: strings are hashed as their bytes, anything else as its JSON encoding;
several arguments are fed in turn into one digest.

Lua strings are byte strings, and these functions take them as such, as KumoMTA's do: they
are marked :func:`takes_bytes`, so a Lua string that is not valid UTF-8 (a digest's
``.bytes``, what ``base64_decode`` gave, ``string.char(0xff)``) reaches them as ``bytes``
rather than failing to cross the bridge; valid UTF-8 still arrives as ``str``. Decoders
return ``bytes``, which Lua receives as a string of those very bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import zlib
from collections.abc import Callable
from typing import Any

import orjson

from kumocore import ConfigError
from kumocore.config.key_source import key_source_bytes
from kumocore.config.vault import then_with_secrets
from kumocore_lua_policy.byte_strings import takes_bytes
from kumocore_lua_policy.stdlib.arguments import string_arg

_B32_STD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_HEX = b"0123456789ABCDEFGHIJKLMNOPQRSTUV"
_TO_HEX32 = bytes.maketrans(_B32_STD, _B32_HEX)
_FROM_HEX32 = bytes.maketrans(_B32_HEX, _B32_STD)


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return orjson.dumps(value)


def _nopad(data: bytes) -> str:
    return data.rstrip(b"=").decode("ascii")


def _pad(text: str | bytes, block: int) -> bytes:
    data = _bytes(text).strip()
    return data + b"=" * (-len(data) % block)


class BinaryResult:
    """Bytes from a digest, readable in the encodings KumoMTA lists."""

    def __init__(self, data: bytes) -> None:
        self.bytes = data

    def __str__(self) -> str:
        return self.hex

    def __repr__(self) -> str:
        return f"<BinaryResult {self.hex}>"

    @property
    def hex(self) -> str:
        return self.bytes.hex()

    @property
    def base32(self) -> str:
        return base64.b32encode(self.bytes).decode("ascii")

    @property
    def base32_nopad(self) -> str:
        return _nopad(base64.b32encode(self.bytes))

    @property
    def base32hex(self) -> str:
        return base64.b32encode(self.bytes).translate(_TO_HEX32).decode("ascii")

    @property
    def base32hex_nopad(self) -> str:
        return _nopad(base64.b32encode(self.bytes).translate(_TO_HEX32))

    @property
    def base64(self) -> str:
        return base64.b64encode(self.bytes).decode("ascii")

    @property
    def base64_nopad(self) -> str:
        return _nopad(base64.b64encode(self.bytes))

    @property
    def base64url(self) -> str:
        return base64.urlsafe_b64encode(self.bytes).decode("ascii")

    @property
    def base64url_nopad(self) -> str:
        return _nopad(base64.urlsafe_b64encode(self.bytes))


def _digest(algorithm: str) -> Callable[..., BinaryResult]:
    def digest(*args: Any) -> BinaryResult:
        h = hashlib.new(algorithm)
        for arg in args:
            h.update(_bytes(arg))
        return BinaryResult(h.digest())

    digest.__name__ = algorithm
    digest.__doc__ = f"The {algorithm} digest of the arguments, as a BinaryResult."
    return takes_bytes(digest)


@takes_bytes
def crc32(*args: Any) -> BinaryResult:
    value = 0
    for arg in args:
        value = zlib.crc32(_bytes(arg), value)
    return BinaryResult(value.to_bytes(4, "big"))


def key_bytes(key: Any, who: str) -> bytes:
    """A file or inline KeySource (a Vault one is read first: :func:`_hmac`)."""
    return key_source_bytes(key, who, what="KEY")


def _hmac(algorithm: str) -> Callable[[Any, Any], Any]:
    who = f"kumo.digest.hmac_{algorithm}"

    def sign(key: Any, message: Any) -> Any:
        # A key in HashiCorp Vault makes this an awaitable, which Lua waits for.
        data = _bytes(message)
        return then_with_secrets(
            who,
            [key],
            lambda source: BinaryResult(hmac.new(key_bytes(source, who), data, algorithm).digest()),
        )

    sign.__name__ = f"hmac_{algorithm}"
    return takes_bytes(sign)


def _decoder(name: str, fn: Callable[[bytes], bytes]) -> Callable[[Any], bytes]:
    def decode(text: Any) -> bytes:
        try:
            return fn(_bytes(text))
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"kumo.encode.{name}: invalid input: {exc}") from None

    decode.__name__ = name
    return takes_bytes(decode)


def _b32hex_decode(data: bytes, pad: bool) -> bytes:
    data = _pad(data, 8) if not pad else data
    return base64.b32decode(data.upper().translate(_FROM_HEX32))


@takes_bytes
def charset_decode(charset: str, data: Any) -> str:
    charset = string_arg("kumo.encode.charset_decode", "CHARSET", charset)
    try:
        return _bytes(data).decode(charset)
    except LookupError:
        raise ConfigError(f"kumo.encode.charset_decode: unknown charset {charset!r}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"kumo.encode.charset_decode: not valid {charset}: {exc}") from None


def charset_encode(charset: str, text: str, ignore_errors: bool | None = None) -> bytes:
    """KumoMTA's ``charset_encode``: errors are ignored unless ``ignore_errors`` is false;
    a character the charset lacks then becomes a numeric character reference
    (``&#8364;``), as KumoMTA's encoder writes it."""
    errors = "strict" if ignore_errors is False else "xmlcharrefreplace"
    charset = string_arg("kumo.encode.charset_encode", "CHARSET", charset)
    text = string_arg("kumo.encode.charset_encode", "TEXT", text)
    try:
        return text.encode(charset, errors)
    except LookupError:
        raise ConfigError(f"kumo.encode.charset_encode: unknown charset {charset!r}") from None
    except UnicodeEncodeError as exc:
        raise ConfigError(f"kumo.encode.charset_encode: cannot encode as {charset}: {exc}") \
            from None


def digest_functions() -> dict[str, Callable[..., Any]]:
    functions: dict[str, Callable[..., Any]] = {"digest.crc32": crc32}
    for algorithm in ("sha1", "sha224", "sha256", "sha384", "sha512", "sha512_256",
                      "sha3_256", "sha3_384", "sha3_512"):
        functions[f"digest.{algorithm}"] = _digest(algorithm)
    for algorithm in ("sha1", "sha224", "sha256", "sha384", "sha512"):
        functions[f"digest.hmac_{algorithm}"] = _hmac(algorithm)
    return functions


def encode_functions() -> dict[str, Callable[..., Any]]:
    def enc(fn: Callable[[bytes], bytes], nopad: bool = False) -> Callable[[Any], str]:
        def encode(value: Any) -> str:
            data = fn(_bytes(value))
            return _nopad(data) if nopad else data.decode("ascii")

        return takes_bytes(encode)

    b32hex = lambda b: base64.b32encode(b).translate(_TO_HEX32)  # noqa: E731
    encoders = {
        "base32": base64.b32encode, "base32hex": b32hex, "base64": base64.b64encode,
        "base64url": base64.urlsafe_b64encode,
    }  # fmt: skip
    functions: dict[str, Callable[..., Any]] = {}
    for name, fn in encoders.items():
        functions[f"encode.{name}_encode"] = enc(fn)
        functions[f"encode.{name}_nopad_encode"] = enc(fn, nopad=True)
    decoders: dict[str, Callable[[bytes], bytes]] = {
        "base32_decode": base64.b32decode,
        "base32_nopad_decode": lambda b: base64.b32decode(_pad(b, 8)),
        "base32hex_decode": lambda b: _b32hex_decode(b, True),
        "base32hex_nopad_decode": lambda b: _b32hex_decode(b, False),
        "base64_decode": lambda b: base64.b64decode(b, validate=True),
        "base64_nopad_decode": lambda b: base64.b64decode(_pad(b, 4), validate=True),
        "base64url_decode": base64.urlsafe_b64decode,
        "base64url_nopad_decode": lambda b: base64.urlsafe_b64decode(_pad(b, 4)),
        "hex_decode": lambda b: bytes.fromhex(b.decode("ascii")),
    }
    for name, decoder in decoders.items():
        functions[f"encode.{name}"] = _decoder(name, decoder)
    functions["encode.hex_encode"] = takes_bytes(lambda value: _bytes(value).hex())
    functions["encode.charset_decode"] = charset_decode
    functions["encode.charset_encode"] = charset_encode
    return functions
