"""Signing speed: dkimpy vs. kumocore's direct ``cryptography`` signer (numbers in docs/dkim.md).

Run: ``.venv/bin/python -m tests.core.dkim.bench_dkim`` from the repository root.
Both sign relaxed/relaxed over the same headers with the same RSA-2048 key; each result is
the best of five rounds, so a noisy neighbour inflates nothing.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from kumocore.dkim import Signer, public_key_record

HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type")


def make_message(size: int) -> bytes:
    head = (
        b"From: Sender <news@example.com>\r\nTo: Someone <someone@example.net>\r\n"
        b"Subject: Your weekly digest\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
        b"Message-ID: <abc.123@example.com>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def best_rate(fn: Callable[[], object], seconds: float = 0.6) -> float:
    """Operations per second, best of five rounds of about ``seconds / 5`` each."""
    best = 0.0
    for _ in range(5):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 5:
            fn()
            count += 1
        best = max(best, count / elapsed)
    return best


def main() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    ed_key = ed25519.Ed25519PrivateKey.generate()
    record = public_key_record(rsa_key).encode()
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp, "rsa.pem")
        key_file.write_bytes(pem)
        ours = Signer("example.com", "sel", HEADERS, key_path=str(key_file))
        ed = Signer(
            "example.com",
            "ed",
            HEADERS,
            key_data=ed_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            algorithm="ed25519-sha256",
        )
        print(
            f"{'size':>6} {'dkimpy/s':>10} {'kumocore rsa/s':>15} {'speed-up':>9} "
            f"{'kumocore ed25519/s':>19}"
        )
        for size in (2_000, 50_000):
            msg = make_message(size)
            header = ours.sign(msg)
            assert dkim.verify(header + msg, dnsfunc=lambda *_a, **_k: record)

            def with_dkimpy(msg: bytes = msg) -> bytes:
                return bytes(
                    dkim.sign(
                        msg,
                        b"sel",
                        b"example.com",
                        pem,
                        canonicalize=(b"relaxed", b"relaxed"),
                        include_headers=[h.encode() for h in HEADERS],
                    )
                )

            slow = best_rate(with_dkimpy)
            fast = best_rate(functools.partial(ours.sign, msg))
            ed_rate = best_rate(functools.partial(ed.sign, msg))
            print(
                f"{len(msg):>6} {slow:>10.0f} {fast:>15.0f} {fast / slow:>8.1f}x {ed_rate:>19.0f}"
            )


if __name__ == "__main__":
    main()
