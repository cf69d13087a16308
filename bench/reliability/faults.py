"""Reliability sections 1 and 8: kill -9 under load; Redis killed, DNS down and SERVFAIL."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.reliability import abuse
from bench.reliability.bench import Bench, say
from bench.reliability.crash import FAULT_DOMAIN, Ledger, load_worker, run_crash_rounds

# ---------------------------------------------------------------------------- 1 crash


async def section_crash(bench: Bench) -> None:
    mode = bench.mode
    report = await run_crash_rounds(
        rounds=mode.crash_rounds, workers=mode.crash_workers, settle_timeout=60,
        workdir=Path(tempfile.mkdtemp(dir=bench.workdir)),
        progress=lambda line: say(f"  {line}"))  # fmt: skip
    summary = report.summary()
    bench.figures["crash"] = summary
    bench.lost["crash"] = report.lost
    if report.lost:
        bench.problem("crash", f"{report.lost} acknowledged messages lost after kill -9, e.g. "
                      f"{report.lost_examples[:3]}")  # fmt: skip
    if summary.get("still_spooled"):
        bench.problem("crash", f"{summary['still_spooled']} messages still spooled at the end")
    if report.clean_exit_code != 0:
        bench.problem("crash", f"graceful stop exited {report.clean_exit_code}")


# ---------------------------------------------------------------------------- 8 faults


async def section_faults(bench: Bench) -> None:
    figures: dict[str, Any] = {}
    server = bench.server(dns_timeout=0.3)
    lost = 0
    for fault in ("down", "servfail"):
        domain = f"{bench.tag(fault)}.{FAULT_DOMAIN}"
        bench.world.dns.set_records(domain, "MX", [(10, "mx.fault.sink.test")], ttl=1)
        recipients = [f"ok.{n}@{domain}" for n in range(20)]
        if fault == "down":
            bench.world.dns.down()
        else:
            bench.world.dns.set_servfail(True)
        try:
            accepted = [r for r in recipients if abuse.probe(server.port, r).code == 250]
            await asyncio.sleep(3)
            got = bench.world.sink.recipients()
            early = sum(1 for r in accepted if got[r])
        finally:
            bench.world.dns.up()
            bench.world.dns.set_servfail(False)
        started = time.monotonic()
        missing = await asyncio.to_thread(bench.delivered, accepted, 20)
        figures[f"dns_{fault}"] = {
            "accepted": len(accepted), "delivered_while_failing": early,
            "delivered_after": len(accepted) - len(missing),
            "recovery_s": round(time.monotonic() - started, 1)}  # fmt: skip
        lost += len(missing)
    figures["redis"] = await _redis_kill(bench)
    lost += figures["redis"].get("lost", 0)
    bench.lost["faults"] = lost
    if lost:
        bench.problem("faults", f"{lost} messages not delivered after the fault ended")
    bench.figures["faults"] = figures


#: The Redis case's path rate, msg/s: the load goes faster, so the rate throttle (in
#: Redis, then in the local fallback) refuses all along.
PATH_RATE = 300


async def _redis_kill(bench: Bench) -> dict[str, Any]:
    from bench.common.redis_server import RedisServer

    with RedisServer() as redis:
        server = bench.server(
            redis=redis.url,
            log_level="info",
            path={"connection_limit": 3, "max_message_rate": f"{PATH_RATE}/s"},
        )
        ledger, stop = Ledger(), asyncio.Event()
        tag = bench.tag("redis")
        counter = iter(range(10**9))

        def next_recipient() -> str:
            return f"ok.{tag}-{next(counter)}@crash.test"

        tasks = [
            asyncio.create_task(load_worker(server.port, ledger, next_recipient, stop))
            for _ in range(4)
        ]
        kills = 0
        for _ in range(2):
            await asyncio.sleep(bench.mode.load_seconds / 3)
            redis.kill()
            kills += 1
            await asyncio.sleep(1.5)
            await asyncio.to_thread(redis.start)
        await asyncio.sleep(bench.mode.load_seconds / 3)
        stop.set()
        await asyncio.wait(tasks, timeout=10)
        accepted = list(ledger.accepted)
        queued = len(bench.world.sink.undelivered(accepted))
        # What was still queued when the load stopped leaves at the path's rate: that long
        # on top of the 30 s, so the allowance follows the load reception could take.
        missing = await asyncio.to_thread(bench.delivered, accepted, 30 + queued / PATH_RATE)
        log = server.log_text()
        recovered = "reachable again" in log
        if not recovered:
            bench.problem("faults", "redis throttles never reported Redis reachable again")
        return {"kills": kills, "accepted": len(ledger.accepted), "refused": len(ledger.refused),
                "queued_at_stop": queued, "lost": len(missing),
                "fallback_logged": "unreachable" in log,
                "recovery_logged": recovered}  # fmt: skip
