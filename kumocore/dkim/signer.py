"""DKIM signing (RFC 6376, ed25519 per RFC 8463) implemented directly on ``cryptography``.

Why not dkimpy: it canonicalises in pure Python and does RSA with Python integers; an MTA
signs every message, and this module is several times faster (numbers in docs/dkim.md).
dkimpy and opendkim are used by the tests to prove the signatures verify.

Input is the whole message with CRLF line endings; :meth:`Signer.sign` returns the folded
``DKIM-Signature: ...\\r\\n`` header field to prepend.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kumocore.dkim.keys import (
    Algorithm,
    PrivateKey,
    key_algorithm,
    load_private_key,
    load_private_key_data,
)
from kumocore.errors import ConfigError
from kumocore.mail.sparse import SparsePattern

Canonicalization = Literal["Relaxed", "Simple"]

_CANONS: dict[str, Canonicalization] = {"relaxed": "Relaxed", "simple": "Simple"}
_ALGORITHMS: tuple[Algorithm, ...] = ("rsa-sha256", "ed25519-sha256")
_WSP_RUN = re.compile(rb"[ \t]+")
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
        """The folded ``DKIM-Signature`` header field (ending in CRLF) for ``message``."""
        key = self.private_key()
        head, body = split_message(message)
        relaxed_headers = self.header_canonicalization == "Relaxed"
        canon_body = canonicalize_body(body, relaxed=self.body_canonicalization == "Relaxed")
        body_hash = base64.b64encode(hashlib.sha256(canon_body).digest()).decode()

        names, signed = select_headers(parse_fields(head), self.headers, self.over_sign)
        now = int(time.time()) if timestamp is None else timestamp
        tags = self._tags(now, len(canon_body), names, body_hash)
        unsigned = _fold(tags)  # ends in "b=": verifiers hash it with the b= value removed
        hashed = [_canonicalize_header(raw, relaxed_headers) for raw in signed]
        sig_field = _canonicalize_header(unsigned.encode() + _CRLF, relaxed_headers)[:-2]
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


def split_message(message: bytes) -> tuple[bytes, bytes]:
    """Header block (each field ending in CRLF) and body."""
    if message.startswith(_CRLF):
        return b"", message[2:]
    end = message.find(b"\r\n\r\n")
    if end < 0:
        return (message if message.endswith(_CRLF) else message + _CRLF), b""
    return message[: end + 2], message[end + 4 :]


def parse_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """``(lower-case name, raw field incl. folding and CRLF)`` for each header field."""
    fields: list[list[bytes]] = []
    for line in head.split(_CRLF)[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    parsed: list[tuple[bytes, bytes]] = []
    for parts in fields:
        raw = _CRLF.join(parts) + _CRLF
        name, colon, _ = raw.partition(b":")
        if colon:  # a line without a colon is not a field and can never be signed
            parsed.append((name.rstrip(b" \t").lower(), raw))
    return parsed


def select_headers(
    fields: list[tuple[bytes, bytes]], wanted: tuple[str, ...], over_sign: bool
) -> tuple[list[str], list[bytes]]:
    """The ``h=`` names and the raw fields they sign, taking instances bottom-up (5.4.2).

    Without over-signing, listed headers absent from the message are left out of ``h=``.
    With it (KumoMTA's ``over_sign``), a name present N times is listed N+1 times: the
    extra entry signs "no further instance", so one cannot be added later.
    """
    instances: dict[bytes, list[bytes]] = {}
    for field_name, raw in fields:
        instances.setdefault(field_name, []).append(raw)
    names: list[str] = []
    signed: list[bytes] = []
    if over_sign:
        seen: set[str] = set()
        for name in wanted:
            lower = name.lower()
            if lower in seen:
                continue
            seen.add(lower)
            found = instances.get(lower.encode(), [])
            signed.extend(reversed(found))
            names.extend([name] * (len(found) + 1))
        return names, signed
    for name in wanted:
        remaining = instances.get(name.lower().encode())
        if remaining:
            signed.append(remaining.pop())
            names.append(name)
    if not names:  # an empty h= is invalid; a message without From cannot be signed
        raise ValueError("dkim: the message has none of the header fields to sign")
    return names, signed


def _canonicalize_header(raw: bytes, relaxed: bool) -> bytes:
    if not relaxed:
        return raw
    name, _, value = raw.partition(b":")
    value = value.replace(_CRLF, b"")
    if b"\t" in value or b"  " in value:  # most fields have no run to squeeze: skip re
        value = _WSP_RUN.sub(b" ", value)
    value = value.strip(b" ")
    return name.rstrip(b" \t").lower() + b":" + value + _CRLF


def canonicalize_body(body: bytes, relaxed: bool) -> bytes:
    if relaxed:
        run, before_crlf = _spaces_to_relax(body)  # most bodies have neither
        if run:
            body = _WSP_RUN.sub(b" ", body)
        if before_crlf:
            body = body.replace(b" \r\n", _CRLF)
        if body.endswith(b" "):
            body = body[:-1]
    end = len(body)
    while body.endswith(_CRLF, 0, end):  # drop trailing empty lines (RFC 6376 3.4.3/3.4.4)
        end -= 2
    if end == 0:
        return b"" if relaxed else _CRLF
    if end == len(body) - 2:
        return body  # it ends in exactly one CRLF already: no copy
    return body[:end] + _CRLF


_SPACE_RUN = SparsePattern(b"  ", b" ")
_SPACE_BEFORE_CRLF = SparsePattern(b" \r\n", b" ")


def _spaces_to_relax(body: bytes) -> tuple[bool, bool]:
    """``(a tab or a run of spaces somewhere, a space before a CRLF somewhere)``.

    ``re``'s searches for both cost ~55 us per 100 KB; most of a large message is base64,
    which holds no space, so the searches go by way of ``memchr`` for spaces
    (:class:`~kumocore.mail.sparse.SparsePattern`)."""
    return (b"\t" in body or _SPACE_RUN.find(body) >= 0,
            _SPACE_BEFORE_CRLF.find(body) >= 0)


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
