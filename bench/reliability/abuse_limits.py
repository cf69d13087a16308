"""Resource limits: connection floods, idle and trickling clients, held connections."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from bench.common.client import UNTRUSTED, SyncClient


@dataclass
class FloodResult:
    opened: int = 0
    greeted: int = 0  # 220
    refused_421: int = 0  # 421 4.3.2
    other: list[str] = field(default_factory=list)
    connect_errors: int = 0


def connection_flood(port: int, count: int, *, source: str = UNTRUSTED) -> FloodResult:
    """Open ``count`` connections at once and hold them while reading every greeting."""
    result = FloodResult()
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            try:
                sock = socket.create_connection(
                    ("127.0.0.1", port), timeout=5, source_address=(source, 0)
                )
            except OSError:
                result.connect_errors += 1
                continue
            socks.append(sock)
        result.opened = len(socks)
        for sock in socks:
            try:
                line = sock.recv(512)
            except OSError:
                result.connect_errors += 1
                continue
            if line.startswith(b"220"):
                result.greeted += 1
            elif line.startswith(b"421 4.3.2"):
                result.refused_421 += 1
            else:
                result.other.append(line[:80].decode("latin-1"))
    finally:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()
    return result


def idle_client(
    port: int, *, source: str = UNTRUSTED, limit: float = 30.0, after: bytes = b""
) -> tuple[float, bytes]:
    """Connect, send ``after`` (say, a partial DATA) and go quiet: seconds until the
    server closes, and the last bytes it sent."""
    started = time.monotonic()
    with SyncClient(port, source, timeout=limit) as client:
        if after:
            client.send(after)
        data = b""
        with contextlib.suppress(OSError, TimeoutError):
            while chunk := client.sock.recv(65536):
                data += chunk
        return time.monotonic() - started, data[-120:]


def trickle_client(
    port: int, payload: bytes, interval: float, *, source: str = UNTRUSTED, limit: float = 30.0
) -> tuple[int, float, bytes]:
    """Send ``payload`` one byte per ``interval``; returns bytes sent before the server
    hung up (or all of them), the seconds it took, and the server's last bytes."""
    started = time.monotonic()
    sent = 0
    with SyncClient(port, source, timeout=limit) as client:
        client.sock.settimeout(0.001)
        data = b""
        try:
            for byte in payload:
                if time.monotonic() - started > limit:
                    break
                client.send(bytes([byte]))
                sent += 1
                time.sleep(interval)
                with contextlib.suppress(TimeoutError, BlockingIOError):
                    chunk = client.sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    if b"\r\n421 " in b"\r\n" + data:
                        break
        except OSError:
            pass
        return sent, time.monotonic() - started, data[-160:]


@contextlib.contextmanager
def hold_connections(
    port: int, count: int, *, sources: Sequence[str] = (UNTRUSTED,), greet: bool = True
) -> Iterator[list[socket.socket]]:
    """Open ``count`` idle connections (round-robin over ``sources``) and keep them open."""
    socks: list[socket.socket] = []
    try:
        for n in range(count):
            source = sources[n % len(sources)]
            try:
                sock = socket.create_connection(
                    ("127.0.0.1", port), timeout=10, source_address=(source, 0)
                )
            except OSError:
                continue
            socks.append(sock)
        if greet:
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.recv(512)
        yield socks
    finally:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()
