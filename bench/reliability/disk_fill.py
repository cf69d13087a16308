"""Full disks and hostile files (issue 14, findings 8, 17, 18): the tools the tests and
the ``sec_disk`` reliability section share.

Real small filesystems: :func:`tmpfs` mounts a size-limited tmpfs (root only), and
:func:`fill` leaves a chosen number of bytes free on it with a filler file.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench.common.client import TRUSTED, SyncClient, body_for
from bench.common.metrics import metric_samples
from bench.common.smtp_client import Reply

FILLER = ".filler"


class TmpfsUnavailable(RuntimeError):
    """This process may not mount a tmpfs (not root, or no CAP_SYS_ADMIN)."""


@contextlib.contextmanager
def tmpfs(directory: Path, size: str = "8m") -> Iterator[Path]:
    """Mount a ``size`` tmpfs on ``directory`` for the duration; unmount it afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700",
                              "tmpfs", str(directory)], capture_output=True, text=True)
    if mounted.returncode != 0:
        raise TmpfsUnavailable(f"cannot mount a tmpfs on {directory}: "
                               f"{mounted.stderr.strip() or mounted.returncode}")
    try:
        yield directory
    finally:
        # Lazy: a server killed a moment ago may still hold files open.
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def free_bytes(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def fill(directory: Path, leave: int) -> int:
    """Grow a filler file until only about ``leave`` bytes are free; returns its size."""
    path = directory / FILLER
    chunk = b"\0" * (64 * 1024)
    with open(path, "ab") as handle:
        while free_bytes(directory) > leave:
            want = min(len(chunk), free_bytes(directory) - leave)
            try:
                handle.write(chunk[:max(want, 4096)])
                handle.flush()
            except OSError:
                break
    return path.stat().st_size


def unfill(directory: Path) -> None:
    (directory / FILLER).unlink(missing_ok=True)


def send(port: int, recipient: str, size: int = 0, timeout: float = 10.0) -> Reply:
    """One message of about ``size`` body bytes; the last reply."""
    with SyncClient(port, TRUSTED, timeout) as client:
        hello = client.hello("disk.test")
        if hello.code >= 400:  # e.g. 421 at connect while the spool takes no writes
            return hello
        extra = (b"x" * 76 + b"\r\n") * (size // 78)
        replies = client.mail("disk@src.test", [recipient], body_for(recipient, extra))
        with contextlib.suppress(OSError, ConnectionError):
            client.command("QUIT")
        return replies[-1]


def liveness(http_port: int) -> tuple[int, str]:
    """``GET /api/check-liveness/v1``: status and body."""
    url = f"http://127.0.0.1:{http_port}/api/check-liveness/v1"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def crafted_segment(path: Path, compressed: int = 64 * 1024) -> int:
    """Write a hostile log segment: ~``compressed`` bytes of zstd that decode to ~32,000
    times as much (zeros: one 2 GB line), then one real record. Returns its size."""
    import zstandard

    compressor = zstandard.ZstdCompressor(level=1).compressobj()
    zeros = b"\0" * (1 << 20)
    bomb = b"".join(compressor.compress(zeros) for _ in range(compressed * 32_000 >> 20))
    bomb += compressor.compress(b"\n") + compressor.flush()
    tail = zstandard.ZstdCompressor().compress(b'{"type":"Bounce","queue":"after"}\n')
    path.write_bytes(bomb + tail)
    return path.stat().st_size


def logs_cat_max_rss(directory: Path, timeout: float = 120.0) -> tuple[int, int, str, str]:
    """Run ``kumocore logs cat DIR``: (exit status, peak RSS in KiB, stdout, stderr)."""
    import sys

    # VmHWM belongs to the process image: unlike ru_maxrss it does not carry over the
    # parent's size across fork + exec (pytest's own RSS would be counted otherwise).
    code = ("import re, sys; from kumocore.node.cli import main; rc = main(sys.argv[1:]); "
            "status = open('/proc/self/status').read(); "
            "print(re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr); "
            "sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, "logs", "cat", str(directory)],
                          capture_output=True, text=True, timeout=timeout)
    *errors, rss = done.stderr.strip().splitlines() or ["0"]
    return done.returncode, int(rss) if rss.isdigit() else 0, done.stdout, "\n".join(errors)


def rejection_flood(port: int, commands: int, source: str = TRUSTED) -> int:
    """Pipeline ``commands`` out-of-sequence ``RCPT TO`` (each a 503 and a Rejection
    record) on one connection; returns how many replies came back before it closed."""
    import socket

    with SyncClient(port, source, 30.0) as client:
        client.hello("flood.test")
        client.send(b"RCPT TO:<x@crash.test>\r\n" * commands)
        replies = 0
        with contextlib.suppress(OSError, ConnectionError, socket.timeout):
            while replies < commands:
                client.read_reply()
                replies += 1
        return replies


def metric(http_port: int, name: str, sink: str) -> float | None:
    """One ``sink``-labelled sample of ``/metrics`` (None when absent)."""
    values = metric_samples(http_port, name, f'sink="{sink}"')
    return values[0] if values else None
