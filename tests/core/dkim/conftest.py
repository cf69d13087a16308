"""Fixtures for the DKIM tests: real keys on disk, and verifiers that never use real DNS.

Keys are generated once per session (RSA generation is the slow part). ``dkimpy_verify``
serves the public key through dkimpy's ``dnsfunc`` hook. dkimpy needs PyNaCl for ed25519,
which is not installed, so for ed25519 its final ``VerifyKey.verify`` call is answered by a
small stand-in built on ``cryptography``; dkimpy still does all parsing, canonicalisation
and hashing itself, which is what the test is about.
"""

from __future__ import annotations

import base64
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dkim
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from kumocore.dkim import PrivateKey, clear_key_cache, public_key_record

MESSAGE = (
    b"Received: from client.example.org (client [192.0.2.1])\r\n"
    b"\tby mx.example.com; Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    b"From: Alice Example <alice@example.com>\r\n"
    b"To: Bob <bob@example.net>,\r\n"
    b"    Carol <carol@example.net>\r\n"
    b"Subject:   A   folded\r\n"
    b"\tsubject line  \r\n"
    b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
    b"Message-ID: <1234@example.com>\r\n"
    b"\r\n"
    b"Hello  Bob,\t\r\n"
    b"\r\n"
    b"  indented line with trailing space   \r\n"
    b"last line\r\n"
    b"\r\n"
    b"\r\n"
)


@dataclass(frozen=True)
class KeyFile:
    key: PrivateKey
    path: Path
    record: str  # the DNS TXT record

    @property
    def pem(self) -> bytes:
        return self.path.read_bytes()


def _write(key: PrivateKey, path: Path, fmt: serialization.PrivateFormat) -> KeyFile:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    )
    return KeyFile(key, path, public_key_record(key))


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyFile]:
    """``rsa1024-pkcs1``, ``rsa2048-pkcs8``... and ``ed25519`` key files."""
    folder = tmp_path_factory.mktemp("dkim-keys")
    result: dict[str, KeyFile] = {}
    for bits in (1024, 2048):
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        result[f"rsa{bits}-pkcs1"] = _write(
            key, folder / f"rsa{bits}-pkcs1.pem", serialization.PrivateFormat.TraditionalOpenSSL
        )
        result[f"rsa{bits}-pkcs8"] = _write(
            key, folder / f"rsa{bits}-pkcs8.pem", serialization.PrivateFormat.PKCS8
        )
    result["ed25519"] = _write(
        ed25519.Ed25519PrivateKey.generate(),
        folder / "ed25519.pem",
        serialization.PrivateFormat.PKCS8,
    )
    return result


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> Iterator[None]:
    clear_key_cache()
    yield
    clear_key_cache()


class _BadSignatureError(Exception):
    pass


class _VerifyKey:
    """PyNaCl's ``nacl.signing.VerifyKey`` as far as dkimpy uses it."""

    def __init__(self, data: bytes, encoder: object = None) -> None:
        try:
            raw = base64.b64decode(data)
            self._key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        except ValueError as exc:
            raise _NaclValueError(str(exc)) from exc

    def verify(self, message: bytes, signature: bytes) -> bytes:
        try:
            self._key.verify(signature, message)
        except InvalidSignature as exc:
            raise _BadSignatureError("bad signature") from exc
        return message


class _NaclValueError(ValueError):
    pass


_NACL = types.SimpleNamespace(
    signing=types.SimpleNamespace(VerifyKey=_VerifyKey),
    encoding=types.SimpleNamespace(Base64Encoder=object()),
    exceptions=types.SimpleNamespace(
        BadSignatureError=_BadSignatureError, ValueError=_NaclValueError
    ),
)

Verify = Callable[[bytes, str], bool]


@pytest.fixture
def dkimpy_verify(monkeypatch: pytest.MonkeyPatch) -> Verify:
    """``verify(message, txt_record) -> bool`` with dkimpy; the record is the only DNS."""
    monkeypatch.setattr(dkim, "nacl", _NACL, raising=False)

    def verify(message: bytes, record: str) -> bool:
        return bool(dkim.verify(message, dnsfunc=lambda *_a, **_k: record.encode()))

    return verify
