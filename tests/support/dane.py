"""DANE test material: TLSA association data of real (trustme) certificates, and a
STARTTLS context that sends the chain a DANE-TA server must send (RFC 7672 §3.1.2)."""

from __future__ import annotations

import hashlib
import ssl
import tempfile
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def cert_of(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def leaf_cert(leaf: trustme.LeafCert) -> x509.Certificate:
    return cert_of(leaf.cert_chain_pems[0].bytes())


def ca_cert(ca: trustme.CA) -> x509.Certificate:
    return cert_of(ca.cert_pem.bytes())


def association(cert: x509.Certificate, selector: int, mtype: int) -> str:
    """The hex data of a ``U selector mtype`` TLSA record describing ``cert``."""
    data = (cert.public_bytes(Encoding.DER) if selector == 0 else
            cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    if mtype == 1:
        data = hashlib.sha256(data).digest()
    elif mtype == 2:
        data = hashlib.sha512(data).digest()
    return data.hex()


def server_context(leaf: trustme.LeafCert, *extra: trustme.CA) -> ssl.SSLContext:
    """A server context presenting ``leaf`` followed by the certificates of ``extra``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pem = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    pem += b"".join(ca.cert_pem.bytes() for ca in extra)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chain.pem"
        path.write_bytes(leaf.private_key_pem.bytes() + pem)
        context.load_cert_chain(str(path))
    return context


__all__ = ["association", "ca_cert", "cert_of", "leaf_cert", "server_context"]
