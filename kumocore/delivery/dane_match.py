"""Matching a server's certificate chain against DANE TLSA records (RFC 6698, RFC 7672).

Python's ``ssl`` has no DANE support, so the handshake runs without PKIX verification and
the chain the server presented is checked here, before a single SMTP command is sent over
it:

* **DANE-EE (3)** records are matched against the server's own certificate only. As RFC
  7672 §3.1.1 says, its names and validity dates are not looked at: the DNSSEC-signed
  record is the authentication.
* **DANE-TA (2)** records name a trust anchor that must be in the presented chain (RFC
  7672 §3.1.2: servers must send it). The chain from the server certificate up to that
  anchor must verify (signatures, issuer names, CA flags, validity dates of every
  certificate below the anchor), and the server certificate must carry the MX host name
  (§3.2.2: subjectAltName DNS names, ``*.`` matching one label; the common name only when
  there are no DNS names).

Selectors: 0 the whole certificate, 1 its SubjectPublicKeyInfo. Matching types: 0 the
data itself, 1 SHA2-256, 2 SHA2-512.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from kumocore.delivery.dane import Tlsa

#: How many certificates a DANE-TA path may climb before giving up.
MAX_DEPTH = 8


class DaneMismatch(Exception):
    """The presented chain matches none of the TLSA records; the text says why."""


def peer_chain(ssl_object: Any) -> list[bytes]:
    """The certificates the server sent (DER, its own first), verified or not."""
    public = getattr(ssl_object, "get_unverified_chain", None)  # Python 3.13+
    inner = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    getter = public or inner
    if getter is not None:
        chain = getter() or []
        der = 2  # _ssl.ENCODING_DER, which typeshed does not describe
        return [c if isinstance(c, bytes) else c.public_bytes(der) for c in chain]
    leaf = ssl_object.getpeercert(binary_form=True)  # enough for DANE-EE
    return [leaf] if leaf else []


def _association(cert: x509.Certificate, record: Tlsa) -> bytes:
    if record.selector == 0:
        data = cert.public_bytes(Encoding.DER)
    else:
        data = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if record.mtype == 1:
        return hashlib.sha256(data).digest()
    if record.mtype == 2:
        return hashlib.sha512(data).digest()
    return data


def matches(cert: x509.Certificate, record: Tlsa) -> bool:
    """Whether ``cert`` is the one ``record`` describes."""
    try:
        return _association(cert, record) == record.data
    except Exception:  # a key type cryptography cannot export matches nothing
        return False


def check_chain(
    records: Sequence[Tlsa], chain_der: Sequence[bytes], host: str,
    now: datetime.datetime | None = None,
) -> tuple[x509.Certificate, Tlsa]:
    """The certificate and record that authenticate the server; DaneMismatch if none."""
    if not chain_der:
        raise DaneMismatch("the server sent no certificate")
    try:
        chain = [x509.load_der_x509_certificate(der) for der in chain_der]
    except ValueError as err:
        raise DaneMismatch(f"the server's certificate cannot be parsed: {err}") from None
    leaf = chain[0]
    for record in records:
        if record.usage == 3 and matches(leaf, record):
            return leaf, record
    reasons = []
    ta_records = [record for record in records if record.usage == 2]
    if ta_records:
        try:
            return _check_trust_anchor(ta_records, chain, host, now)
        except DaneMismatch as err:
            reasons.append(str(err))
    if any(record.usage == 3 for record in records):
        reasons.insert(0, "the server certificate matches no DANE-EE record")
    raise DaneMismatch("; ".join(reasons))


def _check_trust_anchor(
    records: Sequence[Tlsa], chain: list[x509.Certificate], host: str,
    now: datetime.datetime | None,
) -> tuple[x509.Certificate, Tlsa]:
    now = now or datetime.datetime.now(datetime.UTC)
    leaf, current = chain[0], chain[0]
    for _ in range(MAX_DEPTH):
        _check_dates(current, now)
        issuer = _issuer_of(current, chain)
        if issuer is None:
            raise DaneMismatch(
                "no DANE-TA record matches a certificate of the presented chain "
                f"(no issuer of {current.subject.rfc4514_string()!r} was sent)")
        record = next((r for r in records if matches(issuer, r)), None)
        if record is not None:
            _check_name(leaf, host)
            return issuer, record
        current = issuer
    raise DaneMismatch(f"the certificate chain is longer than {MAX_DEPTH}")


def _issuer_of(cert: x509.Certificate, chain: list[x509.Certificate]) -> x509.Certificate | None:
    """The certificate of ``chain`` that signed ``cert`` and may sign certificates."""
    for candidate in chain:
        if candidate is cert or candidate.subject != cert.issuer:
            continue
        try:
            constraints = candidate.extensions.get_extension_for_class(x509.BasicConstraints)
        except x509.ExtensionNotFound:
            continue
        if not constraints.value.ca:
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except Exception:  # wrong key, bad signature, unsupported algorithm
            continue
        return candidate
    return None


def _check_dates(cert: x509.Certificate, now: datetime.datetime) -> None:
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise DaneMismatch(
            f"certificate {cert.subject.rfc4514_string()!r} is not valid now (valid "
            f"{cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d})")


def _check_name(leaf: x509.Certificate, host: str) -> None:
    """RFC 7672 §3.2.2: with DANE-TA the server certificate must name the MX host."""
    wanted = host.rstrip(".").lower()
    try:
        names = leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    for name in names:
        if _name_matches(name.rstrip(".").lower(), wanted):
            return
    raise DaneMismatch(f"the server certificate (names {names}) does not name {wanted}")


def _name_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        label, _, parent = host.partition(".")
        return bool(label) and parent == pattern[2:]
    return pattern == host
