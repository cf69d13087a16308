"""DKIM signing (RFC 6376, ed25519 per RFC 8463) implemented directly on ``cryptography``.

Why not dkimpy: it canonicalises in pure Python and does RSA with Python integers; an MTA
signs every message, and this module is several times faster (numbers in docs/dkim.md).
dkimpy and opendkim are used by the tests to prove the signatures verify.

Input is the whole message with CRLF line endings; :meth:`Signer.sign` returns the folded
``DKIM-Signature: ...\\r\\n`` header field to prepend. This module holds the signer's
options and the signature field it writes (tags, folding); the canonical forms it hashes
are :mod:`kumocore.dkim.canonicalization`'s.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass, field
from time import perf_counter
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kumocore.dkim.canonicalization import (
    canonicalize_body,
    canonicalize_header,
    parse_fields,
    select_headers,
    split_message,
)
from kumocore.dkim.keys import (
    Algorithm,
    PrivateKey,
    key_algorithm,
    load_private_key,
    load_private_key_data,
)
from kumocore.dkim.stats import STATS
from kumocore.errors import ConfigError

Canonicalization = Literal["Relaxed", "Simple"]

_CANONS: dict[str, Canonicalization] = {"relaxed": "Relaxed", "simple": "Simple"}
_ALGORITHMS: tuple[Algorithm, ...] = ("rsa-sha256", "ed25519-sha256")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII except ':'
# Dot-separated labels; '_' is tolerated because real selectors use it. Anything else (a
# ';', a space) would corrupt the tag list of the header we emit.
_DOMAIN = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")
_AUID = re.compile(r"[!-:<-~]*@[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")  # no ';' or spaces
_FOLD_AT = 78  # RFC 5322 recommends lines of at most 78 characters
_CRLF = b"\r\n"


@dataclass(frozen=True, slots=True)
class Signer:
    """One DKIM signing configuration; immutable and hashable so it can be cached.

    Exactly one of ``key_path`` (a PEM/DER file) or ``key_data`` (the key bytes) is set.
    """

    domain: str
    selector: str
    headers: tuple[str, ...]
    key_path: str | None = None
    key_data: bytes | None = field(default=None, repr=False)
    algorithm: Algorithm = "rsa-sha256"
    header_canonicalization: Canonicalization = "Relaxed"
    body_canonicalization: Canonicalization = "Relaxed"
    expiration: int | None = None
    body_length: bool = False
    over_sign: bool = False
    ttl: float = 300.0
    atps: str | None = None
    atpsh: str | None = None
    agent_user_identifier: str | None = None
    reporting: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise through the back door, once
        if not self.domain or not self.selector:
            raise ConfigError("dkim signer: 'domain' and 'selector' must not be empty")
        set_(self, "domain", _ascii_domain(self.domain, "domain"))
        set_(self, "selector", _ascii_domain(self.selector, "selector"))
        set_(self, "headers", tuple(self.headers))
        for name in self.headers:
            if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
                raise ConfigError(f"dkim signer: 'headers' has an invalid header name {name!r}")
        if "from" not in {h.lower() for h in self.headers}:
            raise ConfigError("dkim signer: 'headers' must include 'From' (RFC 6376 5.4)")
        if (self.key_path is None) == (self.key_data is None):
            raise ConfigError("dkim signer: give exactly one of a key file or key_data")
        if self.algorithm not in _ALGORITHMS:
            raise ConfigError(f"dkim signer: algorithm must be one of {list(_ALGORITHMS)}")
        for opt in ("header_canonicalization", "body_canonicalization"):
            value = getattr(self, opt)
            canon = _CANONS.get(str(value).lower())
            if canon is None:
                raise ConfigError(f"dkim signer: {opt!r} must be 'Relaxed' or 'Simple'")
            set_(self, opt, canon)
        if self.expiration is not None and int(self.expiration) <= 0:
            raise ConfigError("dkim signer: 'expiration' must be a positive number of seconds")
        auid = self.agent_user_identifier
        if auid is not None:
            _, _, auid_domain = auid.rpartition("@")
            auid_domain = auid_domain.lower()
            dom = self.domain.lower()
            in_domain = auid_domain == dom or auid_domain.endswith("." + dom)
            if not _AUID.fullmatch(auid) or not in_domain:
                raise ConfigError(
                    "dkim signer: 'agent_user_identifier' must be an address in 'domain' "
                    "or a subdomain of it (RFC 6376 3.5 i=)"
                )
        if self.atps is not None:
            set_(self, "atps", _ascii_domain(self.atps, "atps"))
            if self.atpsh is None:
                set_(self, "atpsh", "sha256")
        if self.atpsh is not None and self.atpsh not in ("none", "sha1", "sha256"):
            raise ConfigError("dkim signer: 'atpsh' must be 'none', 'sha1' or 'sha256'")

    def private_key(self) -> PrivateKey:
        """The signing key (cached by the key loader); ConfigError when it is unusable."""
        if self.key_data is not None:
            key = load_private_key_data(self.key_data)
            origin = "key_data"
        else:
            assert self.key_path is not None
            key = load_private_key(self.key_path)
            origin = repr(self.key_path)
        if key_algorithm(key) != self.algorithm:
            raise ConfigError(
                f"dkim key {origin}: a {key_algorithm(key)} key cannot make "
                f"{self.algorithm} signatures"
            )
        return key

    def sign(self, message: bytes, *, timestamp: int | None = None) -> bytes:
        """The folded ``DKIM-Signature`` header field (ending in CRLF) for ``message``.

        Timed in KumoMTA's two steps (``dkim_signer_message_parse``, then
        ``dkim_signer_sign``; :mod:`kumocore.dkim.stats` says where they split)."""
        key = self.private_key()
        started = perf_counter()
        try:
            head, body = split_message(message)
            fields = parse_fields(head)
        finally:
            parsed = perf_counter()
            STATS.message_parse.observe(parsed - started)
        try:
            return self._signature(key, fields, body, timestamp)
        finally:
            STATS.sign.observe(perf_counter() - parsed)

    def _signature(
        self, key: PrivateKey, fields: list[tuple[bytes, bytes]], body: bytes,
        timestamp: int | None,
    ) -> bytes:  # fmt: skip
        """The header field signing a parsed message (the step KumoMTA times as signing)."""
        relaxed_headers = self.header_canonicalization == "Relaxed"
        canon_body = canonicalize_body(body, relaxed=self.body_canonicalization == "Relaxed")
        body_hash = base64.b64encode(hashlib.sha256(canon_body).digest()).decode()

        names, signed = select_headers(fields, self.headers, self.over_sign)
        now = int(time.time()) if timestamp is None else timestamp
        tags = self._tags(now, len(canon_body), names, body_hash)
        unsigned = _fold(tags)  # ends in "b=": verifiers hash it with the b= value removed
        hashed = [canonicalize_header(raw, relaxed_headers) for raw in signed]
        sig_field = canonicalize_header(unsigned.encode() + _CRLF, relaxed_headers)[:-2]
        data = b"".join(hashed) + sig_field
        if isinstance(key, rsa.RSAPrivateKey):
            signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        else:  # RFC 8463: Ed25519 (PureEdDSA) over the SHA-256 hash of the data
            signature = key.sign(hashlib.sha256(data).digest())
        return (_append_b(unsigned, base64.b64encode(signature).decode()) + "\r\n").encode()

    def _tags(
        self, now: int, body_len: int, names: list[str], body_hash: str
    ) -> list[tuple[str, list[str]]]:
        canon = f"{self.header_canonicalization}/{self.body_canonicalization}".lower()
        tags: list[tuple[str, list[str]]] = [
            ("v", ["1"]),
            ("a", [self.algorithm]),
            ("c", [canon]),
            ("d", [self.domain]),
            ("s", [self.selector]),
            ("t", [str(now)]),
        ]
        if self.expiration is not None:
            tags.append(("x", [str(now + int(self.expiration))]))
        if self.body_length:
            tags.append(("l", [str(body_len)]))
        if self.agent_user_identifier is not None:
            tags.append(("i", [self.agent_user_identifier]))
        if self.reporting:
            tags.append(("r", ["y"]))
        if self.atps is not None and self.atpsh is not None:
            tags += [("atps", [self.atps]), ("atpsh", [self.atpsh])]
        # h= may fold around its colons, so each name is a separate fold point.
        tags.append(("h", [n + ":" for n in names[:-1]] + names[-1:]))
        tags.append(("bh", [body_hash]))
        return tags


def _ascii_domain(value: str, opt: str) -> str:
    try:
        ascii_value = value.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_value = ""
    if not _DOMAIN.fullmatch(ascii_value):
        raise ConfigError(f"dkim signer: {opt!r} is not a valid domain name: {value!r}")
    return ascii_value


def _fold(tags: list[tuple[str, list[str]]]) -> str:
    """Render ``tag=value;`` pairs folded at tag (and ``h=`` colon) boundaries, then ``b=``."""
    lines: list[str] = []
    line = "DKIM-Signature:"
    for tag, pieces in tags:
        pieces = [f"{tag}={pieces[0]}", *pieces[1:]]
        pieces[-1] += ";"
        for i, piece in enumerate(pieces):
            sep = " " if i == 0 else ""
            if len(line) + len(sep) + len(piece) > _FOLD_AT and line.strip():
                lines.append(line)
                line, sep = "", " "
            line += sep + piece
    if len(line) + 3 > _FOLD_AT:
        lines.append(line)
        line = ""
    lines.append(line + " b=")
    return "\r\n".join(lines)


def _append_b(unsigned: str, value: str) -> str:
    """Add the base64 signature after ``b=``, folding it (FWS is allowed inside base64)."""
    out = [unsigned]
    room = max(_FOLD_AT - len(unsigned.rsplit("\r\n", 1)[-1]), 0)
    out.append(value[:room])
    for start in range(room, len(value), _FOLD_AT - 1):
        out.append("\r\n " + value[start : start + _FOLD_AT - 1])
    return "".join(out)
