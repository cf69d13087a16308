"""Key loading: PKCS#1/PKCS#8/DER forms, ConfigError naming the path, and the mtime cache."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from kumocore import ConfigError
from kumocore.dkim import keys as dkim_keys
from kumocore.dkim.keys import load_private_key, load_private_key_data, public_key_record
from tests.core.dkim.conftest import KeyFile

# A throwaway 512-bit key (``openssl genrsa 512``): cryptography refuses to generate one.
RSA_512 = b"""-----BEGIN PRIVATE KEY-----
MIIBVgIBADANBgkqhkiG9w0BAQEFAASCAUAwggE8AgEAAkEAyYVrv0v35/5wuJ1t
aNyd/SkanfDp42Yq9s1zvmoI3aF7/WnhY5PiEsnoNlVzDevTJfzIDrSkZ9t5OfuG
4y213QIDAQABAkEApd7a5Bcsk1j8AQkbQB+vLuyBSxU7/n9ex8wuA8IVUA4fkC25
IXhydGZxLVAeQDWGq+2nmnyLYnVVBFCQNmxZYQIhAPCXBMiQAbkUXYCA+jfHUP80
RGbgA1RkXlzI0sIf8hA1AiEA1m3JlP+CVCNf1euOYiCxKq4dj60DqVLqOR9NQsur
FAkCIGl5G2y9zTORXQhoAsoPRFANXutmy67krYWpuNPH43v9AiEAhhCoW0cRJifj
0GzxXbrQ6j1ocB8dTe1wUfyXIq8SLHkCIQDAY5W23wZWpJIw6zyXHozgyE9TIm9u
qxxqYd+zJC9KEQ==
-----END PRIVATE KEY-----
"""


@pytest.mark.parametrize("name", ["rsa1024-pkcs1", "rsa2048-pkcs8", "ed25519"])
def test_pem_keys_load_in_pkcs1_and_pkcs8_form(keys: dict[str, KeyFile], name: str) -> None:
    loaded = load_private_key(keys[name].path)
    assert public_key_record(loaded) == keys[name].record


def test_ed25519_key_loads_from_pkcs8_der(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "ed.der").write_bytes(der)
    assert public_key_record(load_private_key(tmp_path / "ed.der")) == public_key_record(key)


@pytest.mark.skipif(shutil.which("opendkim-genkey") is None, reason="needs opendkim-genkey")
def test_key_from_opendkim_genkey_loads_and_matches_its_published_record(tmp_path: Path) -> None:
    subprocess.run(
        ["opendkim-genkey", "-b", "1024", "-s", "sel", "-d", "example.com", "-D", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    published = re.search(r'"p=([^"]+)"', (tmp_path / "sel.txt").read_text())
    assert published is not None
    record = public_key_record(load_private_key(tmp_path / "sel.private"))
    assert record.endswith("p=" + published.group(1))


def test_public_key_records_have_the_dns_format(keys: dict[str, KeyFile]) -> None:
    assert keys["rsa2048-pkcs1"].record.startswith("v=DKIM1; k=rsa; p=MIIBIjANBg")
    assert keys["ed25519"].record.startswith("v=DKIM1; k=ed25519; p=")
    assert len(keys["ed25519"].record.split("p=")[1]) == 44  # 32 raw bytes in base64


def test_missing_key_file_raises_config_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "dkim.pem"
    with pytest.raises(ConfigError, match=str(missing)):
        load_private_key(missing)


def test_unreadable_key_path_raises_config_error_naming_the_path(tmp_path: Path) -> None:
    # A directory stands in for an unreadable file: permission bits do not stop root.
    with pytest.raises(ConfigError, match=f"{tmp_path}.*cannot read"):
        load_private_key(tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"", b"not a key", b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"],
)
def test_malformed_key_file_raises_config_error_naming_the_path(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=f"{path}.*not a valid"):
        load_private_key(path)


def test_weak_encrypted_and_foreign_keys_are_refused(tmp_path: Path) -> None:
    small = serialization.load_pem_private_key(RSA_512, password=None)
    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    cases = {
        "small.pem": (RSA_512, "512 bits"),
        "enc.pem": (
            small.private_bytes(pem, pkcs8, serialization.BestAvailableEncryption(b"pw")),
            "encrypted",
        ),
        "ec.pem": (
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                pem, pkcs8, serialization.NoEncryption()
            ),
            "unsupported key type",
        ),
    }
    for name, (data, complaint) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ConfigError, match=complaint):
            load_private_key(tmp_path / name)


def test_key_file_is_parsed_once_while_unchanged_and_again_after_rotation_and_recheck(
    keys: dict[str, KeyFile], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses: list[str] = []
    real_parse = dkim_keys.parse_private_key

    def counting(data: bytes, *, origin: str) -> dkim_keys.PrivateKey:
        parses.append(origin)
        return real_parse(data, origin=origin)

    monkeypatch.setattr(dkim_keys, "parse_private_key", counting)
    monkeypatch.setattr(dkim_keys, "RECHECK_SECONDS", 3600.0)
    path = tmp_path / "rotating.pem"
    path.write_bytes(keys["rsa1024-pkcs1"].pem)
    first = load_private_key(path)
    assert load_private_key(path) is first and load_private_key(str(path)) is first
    assert len(parses) == 1

    path.write_bytes(keys["rsa2048-pkcs8"].pem)
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse-clock filesystems
    # Until the recheck interval has passed the file is not even looked at.
    assert load_private_key(path) is first and len(parses) == 1
    monkeypatch.setattr(dkim_keys, "RECHECK_SECONDS", 0.0)
    rotated = load_private_key(path)
    assert len(parses) == 2
    assert public_key_record(rotated) == keys["rsa2048-pkcs8"].record


def test_inline_key_data_is_cached_by_content(keys: dict[str, KeyFile]) -> None:
    pem = keys["ed25519"].pem
    assert load_private_key_data(pem) is load_private_key_data(bytes(pem))
    with pytest.raises(ConfigError, match="key_data"):
        load_private_key_data(b"garbage")
