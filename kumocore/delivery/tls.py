"""Outbound TLS: the client context per ``enable_tls`` mode, and what the handshake gave.

KumoMTA's modes (``make_egress_path.enable_tls``):

* ``Opportunistic`` (default): STARTTLS when offered; the certificate must verify, and a
  failed handshake fails the attempt (no fallback to plaintext on that host);
* ``OpportunisticInsecure``: STARTTLS when offered, certificate not checked;
* ``Required`` / ``RequiredInsecure``: as above, but a peer without STARTTLS is refused;
* ``Disabled``: never STARTTLS.

Certificates are verified against OpenSSL's default store (Python's ``ssl`` is OpenSSL,
so ``tls_prefer_openssl`` is always true); ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` in the
environment point it at another CA bundle, as for KumoMTA's OpenSSL build.
``openssl_cipher_list`` is applied with ``SSL_CTX_set_cipher_list`` (TLS 1.2 and older),
``openssl_options`` as KumoMTA applies it (:mod:`kumocore.config.openssl_options`).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kumocore.config.openssl_options import apply_openssl_options

if TYPE_CHECKING:
    from kumocore.config.egress import EgressPathConfig


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """How a delivery went out, for the log record (KumoMTA's field names)."""

    delivery_protocol: str = "ESMTP"
    tls_cipher: str | None = None
    tls_protocol_version: str | None = None
    tls_peer_subject_name: tuple[str, ...] | None = None
    #: Whether the peer certificate was verified (kumocore's; not a KumoMTA log field).
    tls_verified: bool = False


def verifies(mode: str) -> bool:
    """Whether ``mode`` checks the peer certificate."""
    return mode in ("Opportunistic", "Required")


def client_context(path: EgressPathConfig, mode: str | None = None) -> ssl.SSLContext:
    """A fresh client context for one connection over ``path`` in TLS ``mode`` (default
    the path's ``enable_tls``; DANE and MTA-STS may decide another)."""
    context = ssl.create_default_context()  # reads SSL_CERT_FILE / SSL_CERT_DIR now
    if not verifies(mode or str(path.enable_tls)):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    cipher_list = getattr(path, "openssl_cipher_list", None)
    if cipher_list:
        context.set_ciphers(cipher_list)
    options = getattr(path, "openssl_options", None)
    if options:
        apply_openssl_options(context, options)
    if getattr(path, "tls_certificate", None):
        _load_client_certificate(context, path)
    return context


def _load_client_certificate(context: ssl.SSLContext, path: EgressPathConfig) -> None:
    """Present ``tls_certificate`` (key: ``tls_private_key``, else the same source) as
    the client certificate. Both are key sources; OpenSSL only loads files, so the PEM
    goes through a private temporary file that is removed at once."""
    import os
    import tempfile

    from kumocore.policy.secrets import load_secret

    pem = load_secret(path.tls_certificate)
    key = load_secret(path.tls_private_key) if path.tls_private_key else b""
    fd, name = tempfile.mkstemp(prefix="kumocore-client-cert-")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(pem.rstrip(b"\n") + b"\n" + key)
        context.load_cert_chain(name)
    finally:
        os.unlink(name)


def _subject_of_der(der: bytes) -> tuple[str, ...]:
    # An unverified peer's certificate is only available in DER: parse it to name it.
    # RFC 4514 short names (CN, O, C...) are OpenSSL's, which KumoMTA's entries use.
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    return tuple(attribute.rfc4514_string() for attribute in cert.subject)


def session_info(ssl_object: Any, verified: bool) -> SessionInfo:
    """The cipher, version and peer subject of an established TLS session."""
    cipher = ssl_object.cipher()
    subject: tuple[str, ...] = ()
    try:
        der = ssl_object.getpeercert(binary_form=True)
        if der:
            subject = _subject_of_der(der)
    except Exception:  # a certificate we cannot parse is logged without a subject
        subject = ()
    return SessionInfo(
        tls_cipher=cipher[0] if cipher else None,
        tls_protocol_version=ssl_object.version(),
        tls_peer_subject_name=subject or None,
        tls_verified=verified,
    )
