"""ARC test fixtures: a real loopback DNS server publishing two hops' signing keys, and
kumocore's resolvers pointed at it (as a policy's ``kumo.dns.configure_resolver`` does)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.common.dns_server import TestDnsServer
from kumocore.dkim import Signer, public_key_record
from tests.plugins.lua_policy.support import make_runtime

MESSAGE = (
    b"From: Alice <alice@sender.example>\r\n"
    b"To: list@lists.example\r\n"
    b"Subject: ARC test\r\n"
    b"\r\n"
    b"Hello through a chain of custody.\r\n"
)


@dataclass
class Hops:
    """Signers of the first (``hop1``, at relay.example) and second hop (forward.example)."""

    dns: TestDnsServer
    hop1: Signer
    hop2: Signer


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    return (rsa.generate_private_key(public_exponent=65537, key_size=2048),
            rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture
def hops(keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]) -> Iterator[Hops]:
    first, second = keys
    zones = {
        "arc._domainkey.relay.example": {"TXT": [public_key_record(first)]},
        "arc._domainkey.forward.example": {"TXT": [public_key_record(second)]},
    }
    with TestDnsServer(zones) as server:
        kumo = make_runtime().kumo  # sets up the resolvers msg:arc_verify uses
        kumo.dns.configure_resolver(name_servers=[server.address])
        headers = ("From", "To", "Subject")
        yield Hops(server,
                   Signer("relay.example", "arc", headers, key_data=_pem(first)),
                   Signer("forward.example", "arc", headers, key_data=_pem(second)))
