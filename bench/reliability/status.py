"""Reliability section ``status``: the status page (``/status``) against hostile clients.

* an untrusted peer (127.0.0.5) asks for the page, its stream, its data and its assets;
* file names outside the page's own assets (path traversal) are asked for;
* many event-stream clients connect and never read: the node must keep accepting mail,
  answer liveness promptly and keep its memory bounded (each stream holds at most a few
  pending events; a slow reader skips ticks).
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from bench.reliability.crash import free_port

if TYPE_CHECKING:
    from bench.reliability.bench import Bench

__all__ = ["section_status"]

UNTRUSTED = "127.0.0.5"


def _status_code(url: str, source: str = "127.0.0.1") -> int:
    """GET ``url`` from ``source``; the HTTP status (0 when the connection failed)."""
    host, _, rest = url.removeprefix("http://").partition("/")
    address, _, port = host.partition(":")
    try:
        with socket.create_connection((address, int(port)), timeout=10,
                                      source_address=(source, 0)) as sock:  # fmt: skip
            sock.sendall(f"GET /{rest} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                         .encode())  # fmt: skip
            head = sock.recv(64).decode("latin-1")
    except OSError:
        return 0
    parts = head.split(" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _liveness_seconds(base: str) -> float | None:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"{base}/api/check-liveness/v1", timeout=10) as response:
            response.read()
    except (OSError, urllib.error.URLError):
        return None
    return time.monotonic() - started


def section_status(bench: Bench) -> None:
    from bench.reliability.bench import MODES

    short = bench.mode == MODES["short"]
    server = bench.server(http_port=free_port())
    base = f"http://127.0.0.1:{server.spec.http_port}"
    figures: dict[str, object] = {}
    try:
        paths = ("/status", "/status/events", "/status/static/status.js", "/api/admin/status/v1")
        codes = {path: _status_code(base + path, UNTRUSTED) for path in paths}
        bench.hostile("status", "untrusted peer reads the status page, stream and data",
                      all(code == 401 for code in codes.values()), str(codes))  # fmt: skip
        traversal = ("/status/static/..%2f..%2fcli.py", "/status/static/__init__.py",
                     "/status/static/%2e%2e/page.py", "/status/static/")  # fmt: skip
        codes = {path: _status_code(base + path) for path in traversal}
        bench.hostile("status", "path traversal out of the page's assets",
                      all(code == 404 for code in codes.values()), str(codes))  # fmt: skip

        clients = 40 if short else 200
        rss_before = server.rss_kib()
        streams = []
        for _ in range(clients):
            sock = socket.create_connection(("127.0.0.1", server.spec.http_port), timeout=10)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /status/events HTTP/1.1\r\nHost: x\r\n\r\n")
            streams.append(sock)  # never read: the server's writes back up
        time.sleep(8 if short else 20)
        latency = _liveness_seconds(base)
        rss_after = server.rss_kib()
        accepted = bench.probe_ok(server, "status", f"{clients} unread event streams")
        for sock in streams:
            sock.close()
        grown = (rss_after - rss_before) / 1024
        figures.update(unread_streams=clients, liveness_seconds=latency,
                       rss_growth_mib=round(grown, 1))  # fmt: skip
        bench.hostile("status", f"{clients} event-stream clients that never read",
                      accepted and latency is not None and latency < 2.0 and grown < 64,
                      f"liveness {latency}, rss +{grown:.1f} MiB, probe {accepted}")  # fmt: skip
    finally:
        bench.figures["status"] = figures
