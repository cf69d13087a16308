"""Reliability section proxy: hostile PROXY protocol and XCLIENT peers (issue 19, item 7).

A real ``kumocore serve`` trusts 127.0.0.9 as a load balancer (``require_proxy_protocol``)
and 127.0.0.1 for XCLIENT. Attacks: a trusted proxy that sends an endless v1 line, a v2
header announcing 65,535 bytes, or nothing at all; an untrusted peer claiming another
address with a PROXY line or XCLIENT; and a burst of broken headers. Each must end the
connection (or be refused) without affecting other clients, and no session may leak.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

from bench.reliability.bench import Bench

SECTION = "proxy"
PROXY = "127.0.0.9"
UNTRUSTED = "127.0.0.5"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
LISTENER = {
    "client_timeout": "3s",
    "peer": {PROXY: {"require_proxy_protocol": True}, "127.0.0.1": {"allow_xclient": True}},
}


async def _closed_after(port: int, source: str, payload: bytes, timeout: float) -> float | None:
    """Seconds until the server closed the connection after ``payload``; None if it
    sent a banner or stayed open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    start = time.monotonic()
    try:
        writer.write(payload)
        data = await asyncio.wait_for(reader.read(512), timeout)
        return time.monotonic() - start if data == b"" else None
    except (ConnectionError, TimeoutError):
        return None
    finally:
        writer.close()


async def _rcpt_reply(port: int, source: str, first: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        await asyncio.wait_for(reader.readline(), 5)  # banner
        writer.write(first)
        for line in (b"EHLO x\r\n", b"MAIL FROM:<a@anywhere.example>\r\n"):
            writer.write(line)
        writer.write(b"RCPT TO:<b@elsewhere.example>\r\nQUIT\r\n")
        replies = (await asyncio.wait_for(reader.read(), 5)).split(b"\r\n")
        return next((r for r in replies if r[:3] in (b"250", b"550") and b"OK" not in r
                     and b"relay" in r), b"")
    finally:
        writer.close()


async def section_proxy(bench: Bench) -> None:
    server = bench.server(listener=LISTENER)
    port = server.port
    figures: dict[str, Any] = {}

    endless = await _closed_after(port, PROXY, b"PROXY TCP4 " + b"1" * 5000, 5)
    bench.hostile(SECTION, "trusted proxy sends an endless v1 line", endless is not None,
                  f"closed after {endless}")
    huge = V2_SIGNATURE + struct.pack("!BBH", 0x21, 0x11, 65535) + b"\0" * 100
    v2_huge = await _closed_after(port, PROXY, huge, 5)
    bench.hostile(SECTION, "trusted proxy announces a 65,535-byte v2 header",
                  v2_huge is not None, f"closed after {v2_huge}")
    silent = await _closed_after(port, PROXY, b"", 10)
    bench.hostile(SECTION, "trusted proxy sends nothing (cut at client_timeout = 3 s)",
                  silent is not None and silent < 8, f"closed after {silent}")
    figures["seconds_to_close"] = {"endless_v1": endless, "huge_v2": v2_huge,
                                   "silent": silent}

    spoof = await _rcpt_reply(port, UNTRUSTED, b"PROXY TCP4 127.0.0.1 127.0.0.1 1 25\r\n")
    bench.hostile(SECTION, "untrusted peer claims a relay host with a PROXY line",
                  spoof.startswith(b"550 5.7.1 relaying not permitted for 127.0.0.5"),
                  spoof.decode(errors="replace"))
    xclient = await _rcpt_reply(port, UNTRUSTED, b"XCLIENT ADDR=127.0.0.1\r\n")
    bench.hostile(SECTION, "untrusted peer claims a relay host with XCLIENT",
                  xclient.startswith(b"550 5.7.1 relaying not permitted for 127.0.0.5"),
                  xclient.decode(errors="replace"))

    burst = 50 if bench.mode.crash_rounds <= 20 else 300
    start = time.monotonic()
    results = await asyncio.gather(*(
        _closed_after(port, PROXY, b"PROXY GARBAGE\r\n" if n % 2 else b"\r\n\r\n\0\r\nQUI", 10)
        for n in range(burst)))
    figures["broken_header_burst"] = {"connections": burst,
                                      "seconds": round(time.monotonic() - start, 2)}
    bench.hostile(SECTION, f"{burst} broken headers at once from the trusted proxy",
                  all(r is not None for r in results),
                  f"{sum(r is None for r in results)} not closed")
    bench.probe_ok(server, SECTION, "hostile proxy peers")
    bench.figures[SECTION] = figures
