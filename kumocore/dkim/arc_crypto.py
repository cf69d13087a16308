"""The signature arithmetic ARC shares between verifying and sealing (RFC 8617 on RFC 6376).

Tag lists, header selection and canonicalization, body hashes, public key records and
the RSA/Ed25519 checks. Header fields are ``(lower-case name, raw field incl. CRLF)``
pairs as :func:`kumocore.dkim.canonicalization.parse_fields` gives them; the message is CRLF.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from kumocore.dkim.canonicalization import canonicalize_body, canonicalize_header

Fields = list[tuple[bytes, bytes]]
_WSP = re.compile(r"[ \t\r\n]+")
# The b= tag's value (not bh=): after the field's colon or a ';', up to the next ';'.
_B_VALUE = re.compile(rb"([:;][ \t\r\n]*b[ \t\r\n]*=)[^;]*")
_HASHES: dict[str, Callable[..., Any]] = {
    "rsa-sha256": hashlib.sha256,
    "ed25519-sha256": hashlib.sha256,
    "rsa-sha1": hashlib.sha1,
}


class ArcSignatureError(Exception):
    """A signature that is malformed or does not verify; the text says which (KumoMTA's)."""


def parse_tags(value: str) -> dict[str, str]:
    """``tag=value; ...`` as a dict; whitespace around names and values is dropped."""
    tags: dict[str, str] = {}
    for part in value.split(";"):
        part = part.strip(" \t\r\n")
        if not part:
            continue
        name, eq, tag_value = part.partition("=")
        name = name.strip(" \t\r\n")
        if not eq or not name:
            raise ArcSignatureError(
                f"signature syntax error: expected tag=value, got {part[:40]!r}"
            )
        if name in tags:
            raise ArcSignatureError(f"signature syntax error: duplicate tag {name}")
        tags[name] = tag_value.strip(" \t\r\n")
    return tags


def field_value(raw: bytes) -> str:
    """The text after the colon of a raw header field."""
    return raw.partition(b":")[2].decode("utf-8", "replace")


def without_b(raw: bytes) -> bytes:
    """``raw`` with its b= value emptied: what the signature covers (RFC 6376 3.7)."""
    return _B_VALUE.sub(rb"\1", raw, count=1)


def hash_name(algorithm: str) -> Callable[..., Any]:
    try:
        return _HASHES[algorithm]
    except KeyError:
        raise ArcSignatureError(f"unsupported hash algorithm: {algorithm}") from None


def decode_b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(_WSP.sub("", value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ArcSignatureError(f"signature syntax error: failed to decode {what}: {exc}") from None


def select_headers(fields: Fields, names: list[str]) -> list[bytes]:
    """The raw fields ``names`` sign, each name taking its next instance bottom-up
    (RFC 6376 5.4.2); a name with no instance left signs nothing."""
    remaining: dict[bytes, list[bytes]] = {}
    for name, raw in fields:
        remaining.setdefault(name, []).append(raw)
    chosen = []
    for wanted in names:
        stack = remaining.get(wanted.strip().lower().encode())
        if stack:
            chosen.append(stack.pop())
    return chosen


def signed_data(headers: list[bytes], own: bytes, relaxed: bool) -> bytes:
    """The canonical bytes a signature covers: ``headers`` then its own field (b= empty,
    no final CRLF)."""
    parts = [canonicalize_header(raw, relaxed) for raw in headers]
    parts.append(canonicalize_header(without_b(own), relaxed)[:-2])
    return b"".join(parts)


class BodyHashes:
    """Body hashes by (canonicalization, length): 50 sets re-hash a large body once."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._done: dict[tuple[bool, int | None, str], bytes] = {}

    def digest(self, relaxed: bool, length: int | None, algorithm: str) -> bytes:
        key = (relaxed, length, algorithm)
        if key not in self._done:
            canon = canonicalize_body(self.body, relaxed=relaxed)
            if length is not None:
                canon = canon[:length]
            self._done[key] = hash_name(algorithm)(canon).digest()
        return self._done[key]


def public_keys(records: list[str]) -> list[rsa.RSAPublicKey | ed25519.Ed25519PublicKey]:
    """The usable keys among the TXT records at a selector (KumoMTA tries each)."""
    keys: list[rsa.RSAPublicKey | ed25519.Ed25519PublicKey] = []
    for record in records:
        try:
            tags = parse_tags(record)
        except ArcSignatureError:
            continue
        data = tags.get("p", "")
        if not data or tags.get("v", "DKIM1") != "DKIM1":
            continue  # an empty p= is a revoked key
        try:
            raw = base64.b64decode(_WSP.sub("", data), validate=True)
            if tags.get("k", "rsa") == "ed25519":
                keys.append(ed25519.Ed25519PublicKey.from_public_bytes(raw))
                continue
            key = serialization.load_der_public_key(raw)
        except (binascii.Error, ValueError):
            continue
        if isinstance(key, rsa.RSAPublicKey):
            keys.append(key)
    return keys


def check_signature(
    keys: list[rsa.RSAPublicKey | ed25519.Ed25519PublicKey],
    algorithm: str,
    data: bytes,
    signature: bytes,
) -> None:
    """Pass quietly when one of ``keys`` made ``signature`` over ``data``."""
    if not keys:
        raise ArcSignatureError("no key for signature")
    for key in keys:
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                if algorithm == "ed25519-sha256":
                    key.verify(signature, hashlib.sha256(data).digest())
                    return
            elif algorithm.startswith("rsa-"):
                algo = hashes.SHA1() if algorithm == "rsa-sha1" else hashes.SHA256()
                key.verify(signature, data, padding.PKCS1v15(), algo)
                return
        except InvalidSignature:
            continue
    raise ArcSignatureError("signature did not verify")
