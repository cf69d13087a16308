"""One reader for file and inline KeySources: the same source means the same bytes, and a
refusal reads the same, in kumo.secrets.load, the HMAC digests and the AES functions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kumocore import ConfigError
from kumocore.config.key_source import key_source_bytes
from kumocore.policy.secrets import load_secret


def test_a_file_and_inline_data_give_their_bytes(tmp_path: Path) -> None:
    key = tmp_path / "k.bin"
    key.write_bytes(b"\x00\xffsecret")
    assert key_source_bytes(str(key), "f") == b"\x00\xffsecret"
    assert key_source_bytes({"key_data": "s3cret"}, "f") == b"s3cret"
    assert key_source_bytes({"key_data": b"\x01"}, "f") == b"\x01"


def test_a_key_file_past_the_limit_is_refused_by_name(tmp_path: Path) -> None:
    big = tmp_path / "big.key"
    big.write_bytes(b"x" * 101)
    with pytest.raises(ConfigError, match=r"f: key: key file '.*big.key' is larger than 100"):
        key_source_bytes(str(big), "f", what="key", limit=100)
    assert key_source_bytes(str(big), "f", limit=101) == b"x" * 101


def test_a_fifo_is_refused_without_reading_it(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        key_source_bytes(str(fifo), "f")


@pytest.mark.parametrize(("source", "error"), [
    ({"vault_mount": "secret", "vault_path": "k"},
     "f: HashiCorp Vault key sources are not supported here by kumocore yet (read now); "
     "use a file name or { key_data = ... }"),
    ({"event_name": "get_key"}, "f: event-based key sources ({ event_name = ... })"),
    ({"key_data": 5}, "f: key_data must be a string, got number"),
    (7, "f must be a file name, { key_data = ... } or { vault_mount = ..., vault_path = ... }"
        ", got number"),
    ({"other": 1}, "got table"),
])  # fmt: skip
def test_sources_that_cannot_be_read_here_are_refused_saying_why(
    source: object, error: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        key_source_bytes(source, "f", sync="read now")
    assert error in str(raised.value)


def test_a_missing_key_file_reads_the_same_in_every_function(tmp_path: Path) -> None:
    from kumocore_lua_policy.stdlib.codec import key_bytes
    from kumocore_lua_policy.stdlib.crypto import key_source_bytes as aes_key

    missing = str(tmp_path / "missing.key")
    for read in (lambda: load_secret(missing), lambda: key_bytes(missing, "kumo.digest.x"),
                 lambda: aes_key("kumo.crypto.y", "key", missing)):  # fmt: skip
        with pytest.raises(ConfigError) as raised:
            read()
        assert str(raised.value).endswith(
            f": cannot read key file {missing!r}: No such file or directory")


def test_a_key_file_name_holding_a_nul_byte_is_refused_as_invalid() -> None:
    with pytest.raises(ConfigError, match=r"f: invalid key file name '\\x00"):
        key_source_bytes(b"\x00\xff", "f")
