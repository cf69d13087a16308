"""``kumocore sink`` (the README's stand-in receiver) and the default policy's
``KUMOCORE_RELAY_HOST``: real processes, a real SMTP exchange, dkimpy signatures."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.common.redis_server import free_port
from kumocore.node.packaging import default_policy_path
from kumocore.node.sink import dkim_verdict

KUMOCORE = Path(sys.executable).with_name("kumocore")
MESSAGE = (b"From: me@example.com\r\nTo: you@example.net\r\nSubject: hi\r\n"
           b"Date: Thu, 03 Dec 2026 17:00:00 +0000\r\n\r\nhello\r\n")  # fmt: skip


def _key(tmp_path: Path) -> tuple[Path, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem)
    return path, pem


def _signed(pem: bytes, body: bytes = MESSAGE) -> bytes:
    signature = dkim.sign(body, b"default", b"example.com", pem,
                          include_headers=[b"From", b"To", b"Subject"])  # fmt: skip
    return signature + body


def test_the_sink_passes_a_good_signature_and_fails_a_tampered_or_foreign_one(
    tmp_path: Path,
) -> None:
    key_file, pem = _key(tmp_path)
    signed = _signed(pem)
    assert dkim_verdict(signed, key_file) == "DKIM pass d=example.com s=default"
    assert dkim_verdict(signed.replace(b"hello", b"HELLO"), key_file).startswith("DKIM fail")
    (tmp_path / "other").mkdir()
    _, other = _key(tmp_path / "other")
    assert dkim_verdict(_signed(other), key_file).startswith("DKIM fail")
    assert dkim_verdict(MESSAGE, key_file) == "DKIM none (no signature)"


def test_the_sink_saves_each_message_byte_for_byte_and_prints_its_verdict(
    tmp_path: Path,
) -> None:
    import smtplib

    key_file, pem = _key(tmp_path)
    port = free_port()
    out = tmp_path / "sink.out"
    with out.open("wb") as log:
        process = subprocess.Popen(
            [str(KUMOCORE), "sink", "--listen", f"127.0.0.1:{port}", "--dir",
             str(tmp_path / "got"), "--dkim-key", str(key_file)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while b"listening" not in out.read_bytes():
            assert process.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        signed = _signed(pem)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("me@example.com", ["you@example.net"], signed)
        deadline = time.monotonic() + 10
        while b"DKIM" not in out.read_bytes():
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        assert (tmp_path / "got" / "00001.eml").read_bytes() == signed
        assert "DKIM pass d=example.com s=default" in out.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_the_sink_refuses_a_port_in_use_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([str(KUMOCORE), "sink", "--listen", f"127.0.0.1:{port}",
                                 "--dir", str(tmp_path)], capture_output=True, text=True,
                                timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("listen", "reason"), [
    ("::1:2526", "IPv6 host needs brackets"),
    ("127.0.0.1:0", "port must not be 0"),
    ("127.0.0.1", "expected 'host:port'"),
    ("127.0.0.1:99999", "expected 'host:port'"),
])
def test_the_sink_reads_listen_as_every_listener_does_and_says_what_is_wrong(
    listen: str, reason: str
) -> None:
    import argparse

    from kumocore.node.sink import _listen_address

    assert _listen_address("[::1]:2526") == "[::1]:2526"
    with pytest.raises(argparse.ArgumentTypeError, match=reason):
        _listen_address(listen)


@pytest.mark.parametrize("value", ["127.0.0.1", "127.0.0.1:port", "host:99999", "a b:25"])
def test_the_default_policy_refuses_a_malformed_relay_host_naming_the_variable(
    value: str,
) -> None:
    env = {**os.environ, "KUMOCORE_RELAY_HOST": value}
    result = subprocess.run([str(KUMOCORE), "validate", "--policy", str(default_policy_path())],
                            capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert result.returncode != 0
    assert f"KUMOCORE_RELAY_HOST={value}: expected HOST:PORT" in result.stderr
    assert "default-policy.lua" in result.stderr


def test_explain_shows_the_relay_host_route_of_the_default_policy() -> None:
    env = {**os.environ, "KUMOCORE_RELAY_HOST": "127.0.0.1:2526"}
    result = subprocess.run([str(KUMOCORE), "explain", "--policy", str(default_policy_path()),
                             "--from", "me@example.com", "--to", "you@example.net", "--json"],
                            capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "example.net![127.0.0.1]" in result.stdout
    assert "2526" in result.stdout
