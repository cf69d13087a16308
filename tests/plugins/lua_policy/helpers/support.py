"""Helpers for the policy-extras tests: DKIM keys, the example policy in a temp dir, a
real ``kumocore serve`` process, and SMTP sending from an untrusted or trusted peer."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from bench.common.server import banner
from bench.common.world import REPO, free_port

EXAMPLE = REPO / "docs" / "examples" / "helpers"


@dataclass
class Key:
    """A DKIM key pair: the private key file and the DNS TXT record of its public key."""

    path: Path
    txt: bytes


def make_key(path: Path, algorithm: str = "rsa") -> Key:
    import base64

    path.parent.mkdir(parents=True, exist_ok=True)
    if algorithm == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        txt = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)
    else:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        der = rsa_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        txt = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    path.write_bytes(pem)
    return Key(path, txt)


@dataclass
class ExampleSite:
    """The example policy copied to ``root`` with its literals pointed at the test world."""

    root: Path
    smtp_port: int
    http_port: int
    keys: dict[str, Key]

    @property
    def policy(self) -> Path:
        return self.root / "etc" / "policy" / "init.lua"


def install_example(root: Path, dns_address: str, sink_port: int) -> ExampleSite:
    """Copy docs/examples/helpers, changing only literals (paths, ports, name servers)."""
    etc = root / "etc"
    policy_dir = etc / "policy"
    policy_dir.mkdir(parents=True)
    smtp_port, http_port = free_port(), free_port()
    for source in EXAMPLE.iterdir():
        text = source.read_text()
        text = text.replace("/opt/kumocore/etc", str(etc))
        text = text.replace("/var/spool/kumocore", str(root / "spool"))
        text = text.replace("/var/log/kumocore", str(root / "logs"))
        text = text.replace("'0.0.0.0:25'", f"'127.0.0.1:{smtp_port}'")
        text = text.replace("'127.0.0.1:8000'", f"'127.0.0.1:{http_port}'")
        (policy_dir / source.name).write_text(text)
    policy = policy_dir / "init.lua"
    text = policy.read_text()
    # The test Internet: our DNS server, and deliveries to the sink (a shaping file of ours).
    text = text.replace(
        "local kumo = require 'kumo'\n",
        "local kumo = require 'kumo'\n"
        f"kumo.dns.configure_resolver {{ name_servers = {{ '{dns_address}' }} }}\n",
        1,
    )
    text = text.replace(
        f"'{policy_dir}/shaping.toml'",
        f"'{policy_dir}/shaping.toml', '{policy_dir}/test-world.toml'",
    )
    policy.write_text(text)
    (policy_dir / "test-world.toml").write_text(
        f'["default"]\nsmtp_port = {sink_port}\nprohibited_hosts = []\nidle_timeout = "1s"\n'
        'enable_tls = "Disabled"\n'
    )
    keys = {
        "example.com": make_key(etc / "dkim" / "example.com" / "s1.key"),
        "ed.example.com": make_key(etc / "dkim" / "ed.example.com" / "e1.key", "ed25519"),
        "esp.example": make_key(etc / "dkim" / "esp.example" / "s1.key"),
    }
    return ExampleSite(root, smtp_port, http_port, keys)


class Served:
    """``kumocore serve --policy <policy>`` as a child process."""

    def __init__(self, policy: Path, port: int) -> None:
        self.policy, self.port = policy, port
        self.log = policy.parent.parent.parent / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Served:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kumocore.node.cli", "serve", "--workers", "1",
                 "--policy", str(self.policy)],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kumocore exited:\n{self.log.read_text()[-3000:]}")
            if banner(self.port) == 220:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"kumocore not ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def validate(policy: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "kumocore.node.cli", "validate", "--policy", str(policy)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def send(
    port: int, sender: str, recipient: str, data: bytes, source: str = "127.0.0.1"
) -> tuple[int, bytes]:
    """One message; the reply to RCPT TO if refused, else to the end of DATA."""
    rcpt, final = send_steps(port, sender, recipient, data, source)
    return final if final is not None else rcpt


def send_steps(
    port: int, sender: str, recipient: str, data: bytes, source: str = "127.0.0.1"
) -> tuple[tuple[int, bytes], tuple[int, bytes] | None]:
    """The replies to RCPT TO and (if it was accepted) to the end of DATA."""
    with smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=30) as client:
        client.ehlo("client.test")
        client.mail(sender)
        rcpt = client.rcpt(recipient)
        if rcpt[0] >= 300:
            return rcpt, None
        try:
            return rcpt, client.data(data)
        except smtplib.SMTPDataError as exc:
            return rcpt, (exc.smtp_code, exc.smtp_error)


def message(sender: str, recipient: str, subject: str, headers: str = "") -> bytes:
    return (
        f"From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: {subject}\r\n"
        f"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@test>\r\n"
        f"{headers}\r\nHello.\r\n"
    ).encode()


__all__ = [
    "ExampleSite",
    "Key",
    "Served",
    "install_example",
    "make_key",
    "message",
    "send",
    "send_steps",
    "validate",
]
