"""Reliability section ``sec_disk`` (issue 14, findings 2, 8, 17, 18): full disks and
hostile files, against real ``kumocore serve`` processes on real small tmpfs mounts.

Cases (each recorded with :meth:`Bench.hostile`):

* spool under ``min_free_space``: refused with ``421 4.3.1`` and liveness 503 *before*
  the disk is full; measured: seconds until both recover once space is freed;
* spool disk filled for real (no floor, RocksDB's WAL write fails), once with RocksDB
  spools and once with an LMDB data spool (its transaction's page writes fail):
  measured: seconds until reception recovers after space is freed, without a restart;
* log disk full while messages are delivered: they stay spooled until their records are
  written; measured: records lost once space is freed (must be 0);
* a rejection flood while a log sink is backlogged: rejection records are shed (counted),
  every record of the messages accepted meanwhile is kept;
* ``kumocore logs cat`` on a 64 KiB crafted zstd frame: measured: peak RSS;
* a spool directory owned by another user: the start is refused (exit 2, one line).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common.server import KumoServer
from bench.common.server_policy import ServerSpec
from bench.common.world import free_port
from bench.reliability.abuse import wait_until
from bench.reliability.bench import Bench, say
from bench.reliability.disk_fill import (
    TmpfsUnavailable,
    crafted_segment,
    fill,
    liveness,
    logs_cat_max_rss,
    metric,
    rejection_flood,
    send,
    tmpfs,
    unfill,
)

SECTION = "sec_disk"
#: Peak RSS allowed for ``logs cat`` on the crafted frame (it was 4.2 GB).
MAX_CAT_RSS_KIB = 200 * 1024


def _server(bench: Bench, **options: Any) -> KumoServer:
    spec = ServerSpec(dns=bench.world.dns.address, sink_port=bench.world.sink.port, **options)
    server = KumoServer(spec, tempfile.mkdtemp(dir=bench.workdir))
    bench.servers.append(server)
    return server


async def section_sec_disk(bench: Bench) -> None:
    figures: dict[str, Any] = {}
    try:
        figures["spool_floor"] = await asyncio.to_thread(_spool_floor, bench)
        figures["spool_full"] = await asyncio.to_thread(_spool_full, bench, None)
        figures["spool_full_lmdb"] = await asyncio.to_thread(_spool_full, bench, "LMDB")
        figures["log_disk_full"] = await asyncio.to_thread(_log_disk_full, bench)
    except TmpfsUnavailable as exc:
        say(f"  tmpfs cases skipped: {exc}")
        figures["tmpfs"] = f"skipped: {exc}"
    figures["rejection_flood"] = await asyncio.to_thread(_rejection_flood, bench)
    figures["logs_cat"] = await asyncio.to_thread(_logs_cat, bench)
    figures["foreign_spool_dir"] = await asyncio.to_thread(_foreign_dir, bench)
    bench.figures[SECTION] = figures


def _spool_floor(bench: Bench) -> dict[str, Any]:
    http = free_port()
    server = _server(bench, http_port=http, spool={"min_free_space": "25%"})
    spool = server.var / "spool"
    with tmpfs(spool, "8m"):
        try:
            server.start()
            fill(spool, leave=1024 * 1024)
            refused = wait_until(lambda: liveness(http)[0] == 503, 10)
            reply = send(server.port, f"ok.{bench.tag('floor')}@crash.test")
            live = liveness(http)
            held = refused and reply.code == 421 and reply.text.startswith("4.3.1") \
                and live == (503, "storage is too full")
            bench.hostile(SECTION, "spool under min_free_space refuses 4xx, liveness 503",
                          held, f"reply {reply}, liveness {live}")
            started = time.monotonic()
            unfill(spool)
            rcpt = f"ok.{bench.tag('floor')}@crash.test"
            back = wait_until(lambda: liveness(http)[0] == 200
                              and send(server.port, rcpt).code == 250, 20, 0.1)
            seconds = round(time.monotonic() - started, 2)
            bench.hostile(SECTION, "reception and liveness recover once space is freed",
                          back, f"not back after {seconds}s")
            lost = bench.delivered([rcpt], 15) if back else []
            bench.lost[SECTION] = bench.lost.get(SECTION, 0) + len(lost)
        finally:
            server.kill()
    say(f"  spool floor: refused and liveness 503; recovered {seconds}s after space freed")
    return {"recover_s": seconds}


def _spool_full(bench: Bench, data_kind: str | None) -> dict[str, Any]:
    """``data_kind``: None for RocksDB data and meta; ``"LMDB"`` for both spools in LMDB
    at one path, as the performance bench runs them (one environment, one transaction)."""
    shared: dict[str, Any] = ({"spool_kind": "LMDB", "meta_dir": "data"}
                              if data_kind == "LMDB" else {})
    server = _server(bench, spool={"min_free_space": 0, "min_free_inodes": 0},
                     data_kind=data_kind, **shared)
    spool = server.var / "spool"
    kind = f" ({data_kind} data and meta)" if data_kind else ""
    with tmpfs(spool, "8m"):
        try:
            server.start()
            fill(spool, leave=1024 * 1024)
            codes = [send(server.port, f"big.{bench.tag('full')}@crash.test", 200_000).code
                     for _ in range(12)]
            accepted = codes.count(250)
            bench.hostile(SECTION, f"spool disk full{kind}: 4xx, never a 250 for an unsaved "
                          "message", set(codes) <= {250, 421, 451} and codes[-1] != 250,
                          f"codes {codes}")
            started = time.monotonic()
            unfill(spool)
            rcpt = f"ok.{bench.tag('full')}@crash.test"
            back = wait_until(lambda: send(server.port, rcpt).code == 250, 20, 0.2)
            seconds = round(time.monotonic() - started, 2)
            bench.hostile(SECTION, f"spool disk filled for real{kind}: reception recovers, "
                          "no restart", back, f"still refused {seconds}s after space was freed")
            lost = bench.delivered([rcpt], 15) if back else []
            bench.lost[SECTION] = bench.lost.get(SECTION, 0) + len(lost)
        finally:
            server.kill()
    say(f"  spool full{kind}: {accepted} accepted before ENOSPC; recovered {seconds}s after "
        "freeing")
    return {"accepted_before_full": accepted, "recover_s": seconds}


def _log_disk_full(bench: Bench) -> dict[str, Any]:
    from kumocore.logs.reader import iter_records

    server = _server(bench)
    logs = server.var / "logs"
    count = 5
    with tmpfs(logs, "2m"):
        try:
            server.start()
            fill(logs, leave=0)
            recipients = [f"ok.{n}.{bench.tag('logfull')}@crash.test" for n in range(count)]
            accepted = [r for r in recipients if send(server.port, r).code == 250]
            bench.delivered(accepted, 15)
            kept = len(server.spooled_ids())
            unfill(logs)
            started = time.monotonic()
            drained = wait_until(lambda: not server.spooled_ids(), 30, 0.2)
            seconds = round(time.monotonic() - started, 2)
            seen: dict[str, set[str]] = {r: set() for r in accepted}
            for record in iter_records(logs, on_problem=lambda _: None):
                if record.get("recipient") in seen:
                    seen[record["recipient"]].add(record["type"])
            lost = sum(2 - len({"Reception", "Delivery"} & kinds) for kinds in seen.values())
        finally:
            server.kill()
    bench.hostile(SECTION, "log disk full: delivered messages stay spooled until logged",
                  kept == len(accepted) and drained and lost == 0,
                  f"kept {kept}/{len(accepted)}, drained {drained}, records lost {lost}")
    bench.lost[SECTION] = bench.lost.get(SECTION, 0) + lost
    say(f"  log disk full: {kept}/{len(accepted)} delivered kept spooled; records lost {lost}; "
        f"spool empty {seconds}s after space freed")
    return {"delivered_while_full": len(accepted), "kept_spooled": kept,
            "records_lost": lost, "drain_s": seconds}


def _rejection_flood(bench: Bench) -> dict[str, Any]:
    """Finding 2: a rejection flood while a log sink is backlogged sheds only rejection
    records; every record of the messages accepted meanwhile is kept."""
    from concurrent.futures import ThreadPoolExecutor

    from kumocore.logs.reader import iter_records

    http = free_port()
    server = _server(bench, http_port=http, slow_log_sink=0.2, slow_log_sink_buffer=500)
    server.start()
    try:
        recipients = [f"ok.{n}.{bench.tag('flood')}@crash.test" for n in range(20)]
        with ThreadPoolExecutor(8) as pool:
            floods = [pool.submit(rejection_flood, server.port, 2_000) for _ in range(6)]
            codes = [send(server.port, r).code for r in recipients]
            answered = sum(f.result() for f in floods)
        accepted = [r for r, code in zip(recipients, codes, strict=True) if code == 250]
        bench.delivered(accepted, 20)
        written = wait_until(lambda: (metric(http, "kumocore_log_sink_written_total", "slow")
                                      or 0) >= 2 * len(accepted), 30, 0.2)
        shed = metric(http, "kumocore_log_sink_shed_total", "slow") or 0
        dropped = metric(http, "kumocore_log_sink_dropped_total", "slow") or 0
        seen: dict[str, set[str]] = {r: set() for r in accepted}
        for record in iter_records(server.log_dir, on_problem=lambda _: None):
            if record.get("recipient") in seen:
                seen[record["recipient"]].add(record["type"])
        lost = sum(2 - len({"Reception", "Delivery"} & kinds) for kinds in seen.values())
    finally:
        server.kill()
    held = len(accepted) == len(recipients) and dropped == 0 and lost == 0 and written
    bench.hostile(SECTION, "rejection flood with a backlogged log sink sheds only rejections",
                  held, f"accepted {len(accepted)}/{len(recipients)}, dropped {dropped}, "
                  f"records lost {lost}, all written {written}")
    bench.lost[SECTION] = bench.lost.get(SECTION, 0) + lost
    say(f"  rejection flood: {answered} refusals answered, {int(shed)} rejection records "
        f"shed by the slow sink, {len(accepted)} messages accepted, records lost {lost}")
    return {"refusals": answered, "shed": int(shed), "dropped": int(dropped),
            "accepted": len(accepted), "records_lost": lost}


def _logs_cat(bench: Bench) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(dir=bench.workdir))
    size = crafted_segment(directory / "20250101-000000.000000000")
    (directory / "20250101-000001.000000000").write_bytes(b"not a segment\n")
    code, rss, out, errors = logs_cat_max_rss(directory)
    held = code == 0 and rss < MAX_CAT_RSS_KIB and out.count("\n") == 1 \
        and len(errors.splitlines()) == 2
    bench.hostile(SECTION, "logs cat on a crafted 64 KiB zstd frame and a stray file", held,
                  f"exit {code}, peak RSS {rss} KiB, stderr {errors[:300]!r}")
    say(f"  logs cat: {size} byte crafted frame, peak RSS {rss // 1024} MiB")
    return {"frame_bytes": size, "peak_rss_mib": round(rss / 1024, 1)}


def _foreign_dir(bench: Bench) -> dict[str, Any]:
    server = _server(bench)
    data = server.var / "spool" / "data"
    data.mkdir(parents=True)
    if os.geteuid() == 0:
        os.chown(data, 65534, 65534)
        what = "owned by another user"
    else:
        data.chmod(0o777)
        what = "world-writable"
    code = server.spawn().wait(timeout=60)
    errors = [line for line in server.log_text().splitlines() if "kumocore: error" in line]
    bench.hostile(SECTION, f"spool directory {what} refuses the start",
                  code == 2 and len(errors) == 1, f"exit {code}, {errors[:2]}")
    return {"case": what, "exit": code}
