"""Signatures verify with OpenDKIM (libopendkim via ``opendkim-testmsg``), an independent
implementation, with the key served from a private loopback DNS (see opendkim.py)."""

from __future__ import annotations

from typing import Any

import pytest

from kumocore.dkim import Signer
from tests.core.dkim.conftest import MESSAGE, KeyFile
from tests.core.dkim.opendkim import opendkim_verify, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))

HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "Cc")


def sign(key: KeyFile, header_canon: str, body_canon: str, **extra: Any) -> bytes:
    options: dict[str, Any] = {
        "algorithm": "ed25519-sha256" if "ed25519" in key.path.name else "rsa-sha256",
        "header_canonicalization": header_canon,
        "body_canonicalization": body_canon,
        **extra,
    }
    signer = Signer("example.com", "sel", HEADERS, key_path=str(key.path), **options)
    return signer.sign(MESSAGE) + MESSAGE


@pytest.mark.parametrize(
    ("key_name", "header_canon", "body_canon"),
    [
        ("rsa1024-pkcs1", "Relaxed", "Relaxed"),
        ("rsa2048-pkcs8", "Relaxed", "Relaxed"),
        ("rsa2048-pkcs1", "Simple", "Simple"),
        ("rsa1024-pkcs8", "Relaxed", "Simple"),
        ("ed25519", "Relaxed", "Relaxed"),
        ("ed25519", "Simple", "Relaxed"),
    ],
)
def test_signature_verifies_with_opendkim(
    keys: dict[str, KeyFile], key_name: str, header_canon: str, body_canon: str
) -> None:
    key = keys[key_name]
    result = opendkim_verify(
        sign(key, header_canon, body_canon), {"sel._domainkey.example.com": key.record}
    )
    assert result.returncode == 0, result.stderr.decode()


def test_over_signed_signature_with_body_length_verifies_with_opendkim(
    keys: dict[str, KeyFile],
) -> None:
    key = keys["rsa2048-pkcs8"]
    message = sign(key, "Relaxed", "Relaxed", over_sign=True, body_length=True, expiration=600)
    result = opendkim_verify(message, {"sel._domainkey.example.com": key.record})
    assert result.returncode == 0, result.stderr.decode()


def test_opendkim_rejects_a_tampered_body_and_a_wrong_key(keys: dict[str, KeyFile]) -> None:
    key = keys["rsa2048-pkcs8"]
    signed = sign(key, "Relaxed", "Relaxed")
    tampered = opendkim_verify(
        signed.replace(b"last line", b"last lime"), {"sel._domainkey.example.com": key.record}
    )
    assert tampered.returncode != 0 and b"Bad signature" in tampered.stderr
    wrong = opendkim_verify(signed, {"sel._domainkey.example.com": keys["rsa1024-pkcs8"].record})
    assert wrong.returncode != 0
