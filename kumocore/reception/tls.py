"""TLS for the listeners: certificates from the policy, or a generated self-signed one.

Both listeners take KumoMTA's ``tls_certificate``/``tls_private_key`` options, each a
*KeySource*: a file name, or a table ``{key_data = "-----BEGIN ..."}`` holding the PEM
text itself. When neither is configured, a self-signed certificate for the listener's
hostname is generated, as KumoMTA does, so STARTTLS (and ``use_tls`` over HTTP) work
out of the box. Opportunistic STARTTLS between MTAs does not verify certificates, so a
self-signed one still protects against passive eavesdropping.

Generated certificates use an ECDSA P-256 key: generating one takes about a millisecond,
where RSA-2048 takes tens, and every current TLS client supports it. They are cached per
hostname for the life of the process, so several listeners (and tests) share one.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kumocore.errors import ConfigError
from kumocore.regular_file import read_regular_file

__all__ = ["KeySource", "load_key_source", "self_signed_pem", "server_context"]

#: A file name, or a table such as ``{"key_data": "-----BEGIN ..."}``.
KeySource = str | Mapping[str, Any]

_VALIDITY = datetime.timedelta(days=365)


@lru_cache(maxsize=16)
def self_signed_pem(hostname: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``hostname``: ``(certificate_pem, private_key_pem)``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64] or "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(hostname or "localhost")]
    try:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(hostname)))
    except ValueError:
        pass
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Backdated a little so that a peer whose clock is slightly behind accepts it.
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def load_key_source(source: KeySource, *, key: str) -> bytes:
    """The bytes a KeySource refers to; :class:`ConfigError` names ``key`` on failure."""
    if isinstance(source, str):
        try:
            return read_regular_file(source)  # a FIFO or a device would hold the loop
        except OSError as exc:
            raise ConfigError(f"{key}: cannot read {source!r}: {exc.strerror}") from None
    if isinstance(source, Mapping):
        data = source.get("key_data")
        if isinstance(data, str):
            return data.encode()
        if isinstance(data, bytes):
            return data
        if "vault_path" in source:
            raise ConfigError(f"{key}: vault key sources are not supported; use key_data")
    raise ConfigError(f"{key}: expected a file name or a table like {{key_data=...}}")


def server_context(
    hostname: str,
    certificate: KeySource | None = None,
    private_key: KeySource | None = None,
) -> ssl.SSLContext:
    """A server-side context; self-signed for ``hostname`` when nothing is configured."""
    if certificate is None and private_key is None:
        cert_pem, key_pem = self_signed_pem(hostname)
    elif certificate is None or private_key is None:
        missing = "tls_certificate" if certificate is None else "tls_private_key"
        raise ConfigError(f"{missing} is required when the other TLS option is set")
    else:
        cert_pem = load_key_source(certificate, key="tls_certificate")
        key_pem = load_key_source(private_key, key="tls_private_key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # A renegotiation asked by the client redoes the server's costly half of a handshake
    # on an admitted connection, as often as asked: refused (OpenSSL 3's default, not
    # 1.1.1's; tests/smtp/test_adversary_tls.py).
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    _load_chain(context, cert_pem, key_pem)
    return context


def _load_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    # The ssl module only loads a certificate chain from files, so the PEM text goes
    # through a private temporary directory that is removed straight away.
    with tempfile.TemporaryDirectory(prefix="kumocore-tls-") as directory:
        cert_file = os.path.join(directory, "cert.pem")
        key_file = os.path.join(directory, "key.pem")
        for path, data in ((cert_file, cert_pem), (key_file, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        try:
            context.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"tls_certificate/tls_private_key: cannot load the key pair: {exc}"
            ) from None
