"""Loading DKIM private keys, cached so that signing a message never re-reads a key file.

KumoMTA accepts RSA keys as PKCS#1 (``BEGIN RSA PRIVATE KEY``) or PKCS#8 (``BEGIN PRIVATE
KEY``) PEM, and ed25519 keys as PKCS#8 (PEM or DER). Parsing a PEM RSA key costs far more
than signing with it, so parsed keys are cached: file keys by ``(path, mtime, size)``,
looked at again at most every :data:`RECHECK_SECONDS` (a ``stat`` per message was 1 % of a
signing worker), so a rotated key file is picked up within a second; inline
``key_data`` by its bytes. (KumoMTA reads the key when it builds a signer, which it keeps
for the signer's ``ttl``, 300 s by default.) Every load is counted as a lookup of
KumoMTA's ``dkim_key_cache`` and a read as a key fetch (:mod:`kumocore.dkim.stats`).
"""

from __future__ import annotations

import base64
import os
import threading
import time
from functools import lru_cache
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from kumocore.dkim.stats import STATS, Timing
from kumocore.errors import ConfigError
from kumocore.regular_file import read_regular_file

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
Algorithm = Literal["rsa-sha256", "ed25519-sha256"]

#: RFC 8301: verifiers must not accept RSA keys under 1024 bits, so refuse to sign with one.
MIN_RSA_BITS = 1024

#: A key file larger than this is refused: a 4096-bit RSA PEM key is about 3.3 KiB.
MAX_KEY_FILE = 64 * 1024

#: How long a key file's cached parse is used before its stamp is checked again.
RECHECK_SECONDS = 1.0

_FileStamp = tuple[int, int]  # (st_mtime_ns, st_size)

# One entry per path (a new mtime replaces the old entry), so the cache cannot grow with
# key rotations: (stamp, key, when the stamp was last checked, monotonic). Guarded by a
# lock because signing may run in worker threads.
_file_cache: dict[str, tuple[_FileStamp, PrivateKey, float]] = {}
_file_lock = threading.Lock()


def load_private_key(path: str | os.PathLike[str]) -> PrivateKey:
    """The parsed private key in the file at ``path``, from cache while the file is unchanged.

    Raises :class:`ConfigError` naming ``path`` when it is missing, unreadable or malformed.
    Counted in :data:`~kumocore.dkim.stats.STATS` as a lookup of KumoMTA's key cache.
    """
    name = os.fspath(path)
    now = time.monotonic()
    STATS.key_cache_lookup_count += 1
    cached = _file_cache.get(name)
    if cached is not None and now - cached[2] < RECHECK_SECONDS:
        STATS.key_cache_hit += 1
        return cached[1]
    stamp = _file_stamp(name)
    if cached is not None and cached[0] == stamp:
        with _file_lock:
            _file_cache[name] = (stamp, cached[1], now)
        STATS.key_cache_hit += 1
        return cached[1]
    with Timing(STATS.key_fetch):
        key = _read_key_file(name)
    with _file_lock:
        _file_cache[name] = (stamp, key, now)
    STATS.key_cache_miss += 1
    return key


def _file_stamp(name: str) -> _FileStamp:
    try:
        st = os.stat(name)
    except OSError as exc:
        raise ConfigError(f"dkim key {name!r}: cannot read key file: {exc.strerror}") from exc
    return st.st_mtime_ns, st.st_size


def _read_key_file(name: str) -> PrivateKey:
    try:
        # A FIFO or a device must not hold the loop (or a worker) waiting: regular only.
        data = read_regular_file(name, MAX_KEY_FILE)
    except OSError as exc:
        raise ConfigError(f"dkim key {name!r}: cannot read key file: {exc.strerror}") from exc
    if len(data) > MAX_KEY_FILE:
        raise ConfigError(f"dkim key {name!r}: key file is larger than {MAX_KEY_FILE} bytes")
    return parse_private_key(data, origin=repr(name))


def load_private_key_data(data: bytes) -> PrivateKey:
    """Parse inline key material (KumoMTA's ``key = { key_data = "..." }``), cached.

    A lookup of KumoMTA's key cache too: a hit unless :func:`_parse_key_data` ran (and
    counted the miss). Reading the miss count around the call is exact on the event
    loop's thread, where signing happens (see :mod:`kumocore.dkim.stats`).
    """
    STATS.key_cache_lookup_count += 1
    misses = STATS.key_cache_miss
    key = _parse_key_data(data)
    if STATS.key_cache_miss == misses:
        STATS.key_cache_hit += 1
    return key


@lru_cache(maxsize=256)
def _parse_key_data(data: bytes) -> PrivateKey:
    with Timing(STATS.key_fetch):
        key = parse_private_key(data, origin="key_data")
    STATS.key_cache_miss += 1
    return key


def parse_private_key(data: bytes, *, origin: str) -> PrivateKey:
    """Parse PEM (PKCS#1 or PKCS#8) or DER (PKCS#8) key bytes; ``origin`` names the source."""
    stripped = data.strip()
    try:
        if stripped.startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(stripped, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except TypeError as exc:  # raised for encrypted keys: we have no passphrase to offer
        raise ConfigError(f"dkim key {origin}: encrypted keys are not supported") from exc
    except ValueError as exc:
        raise ConfigError(f"dkim key {origin}: not a valid PEM/DER private key") from exc
    except UnsupportedAlgorithm as exc:  # e.g. a DSA or X448 key
        raise ConfigError(f"dkim key {origin}: cannot parse private key: {exc}") from exc
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ConfigError(
                f"dkim key {origin}: RSA key has {key.key_size} bits, at least "
                f"{MIN_RSA_BITS} are required (RFC 8301)"
            )
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise ConfigError(
        f"dkim key {origin}: unsupported key type {type(key).__name__}; "
        "DKIM signs with RSA or ed25519 keys"
    )


def key_algorithm(key: PrivateKey) -> Algorithm:
    """The DKIM ``a=`` algorithm a key signs with."""
    return "rsa-sha256" if isinstance(key, rsa.RSAPrivateKey) else "ed25519-sha256"


def public_key_record(key: PrivateKey) -> str:
    """The DNS TXT record (``v=DKIM1; k=...; p=...``) to publish for ``key``.

    RSA publishes the DER SubjectPublicKeyInfo; ed25519 the raw 32-byte key (RFC 8463).
    """
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"


def clear_key_cache() -> None:
    """Forget every parsed key (tests; an operator reload)."""
    with _file_lock:
        _file_cache.clear()
    _parse_key_data.cache_clear()
