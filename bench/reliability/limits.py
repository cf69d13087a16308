"""Reliability section 7: connection flood, idle and trickling clients, memory, stuck log sink."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from bench.reliability import abuse
from bench.reliability.bench import Bench
from bench.reliability.crash import Ledger, load_worker

# ---------------------------------------------------------------------------- 7 limits


async def section_limits(bench: Bench) -> None:
    mode = bench.mode
    figures: dict[str, Any] = {}
    limited = bench.server(listener={"max_connections": 50, "client_timeout": "1s"})
    flood = abuse.connection_flood(limited.port, 80)
    figures["flood"] = {
        "opened": flood.opened,
        "greeted": flood.greeted,
        "refused_421_4_3_2": flood.refused_421,
    }
    if flood.greeted > 50 or flood.refused_421 < 30:
        bench.problem("limits", f"max_connections=50 did not hold: {flood}")
    seconds, last = abuse.idle_client(limited.port, limit=5)
    figures["idle_disconnect_s"] = round(seconds, 2)
    if seconds > 3 or b"421 4.3.2" not in last:
        bench.problem("limits", f"idle client not cut after client_timeout=1s ({seconds:.1f}s)")
    _, seconds, last = abuse.trickle_client(limited.port, b"EHLO slowloris\r\n", 1.3, limit=5)
    figures["trickle_disconnect_s"] = round(seconds, 2)
    if b"421 4.3.2" not in last:
        bench.problem("limits", "a client trickling slower than client_timeout was not cut")
    await asyncio.sleep(0.5)
    bench.probe_ok(limited, "limits", "the flood")

    server = bench.server(listener={"client_timeout": "300s"})
    abuse.probe(server.port, f"ok.{bench.tag('mem')}@crash.test")
    before = server.rss_kib()
    sources = [f"127.0.{a}.{b}" for a in range(1, 9) for b in range(2, 250)]
    started = time.monotonic()
    with abuse.hold_connections(server.port, mode.idle_connections, sources=sources) as socks:
        held = server.rss_kib()
        opened = len(socks)
        probe_ok = bench.probe_ok(server, "limits", f"{opened} idle connections")
    figures["idle_connections"] = {
        "held": opened, "open_s": round(time.monotonic() - started, 1),
        "rss_before_mib": round(before / 1024, 1), "rss_held_mib": round(held / 1024, 1),
        "kib_per_connection": round((held - before) / max(opened, 1), 1), "probe_ok": probe_ok,
    }  # fmt: skip
    if opened < mode.idle_connections:
        bench.problem("limits", f"only {opened}/{mode.idle_connections} connections opened")

    before = server.rss_kib()
    partial = b"EHLO big.test\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<ok.big@relay.test>\r\nDATA\r\n"
    chunk = (b"y" * 998 + b"\r\n") * 1024  # 1 MiB
    with abuse.hold_connections(
        server.port, mode.partial_data_connections, sources=sources[:64]
    ) as socks:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.sendall(partial + chunk)
        await asyncio.sleep(1.0)
        held = server.rss_kib()
    figures["half_sent_data"] = {
        "connections": mode.partial_data_connections, "mib_each": 1,
        "rss_growth_mib": round((held - before) / 1024, 1),
    }  # fmt: skip
    figures["slow_log_sink"] = await _slow_log_sink(bench)
    bench.figures["limits"] = figures


async def _slow_log_sink(bench: Bench) -> dict[str, Any]:
    server = bench.server(slow_log_sink=60.0)
    ledger, stop = Ledger(), asyncio.Event()
    tag = bench.tag("slowlog")
    counter = iter(range(10**9))
    rss = [server.rss_kib()]

    def next_recipient() -> str:
        return f"ok.{tag}-{next(counter)}@crash.test"

    tasks = [
        asyncio.create_task(load_worker(server.port, ledger, next_recipient, stop))
        for _ in range(6)
    ]
    started = time.monotonic()
    while time.monotonic() - started < bench.mode.load_seconds:
        await asyncio.sleep(0.5)
        rss.append(server.rss_kib())
    stop.set()
    await asyncio.wait(tasks, timeout=10)
    missing = await asyncio.to_thread(bench.delivered, list(ledger.accepted), 30)
    bench.lost["slow_log_sink"] = len(missing)
    if missing:
        bench.problem("limits", f"{len(missing)} messages not delivered with a stuck log sink")
    return {"accepted": len(ledger.accepted), "msgs_per_s": round(len(ledger.accepted) / (
        time.monotonic() - started), 1), "rss_start_mib": round(rss[0] / 1024, 1),
        "rss_max_mib": round(max(rss) / 1024, 1), "lost": len(missing)}  # fmt: skip
