"""``python -m bench.run --mode short|full``: kumocore vs Postfix, same load, same machine.

Sections (``--only`` picks some):

``e2e``       ``smtp-source`` (``--sessions`` connections, each message to a distinct
              recipient) → MTA → ``smtp-sink``, for each message size; first message
              injected → last message at the sink. Postfix runs first, then kumocore.
``http``      ``/api/inject/v1`` (``--http-batch`` recipients per request) → kumocore →
              sink; recipients per second, counted at the sink.
``scheduled`` N deferred messages in the spool: time for kumocore to recover them at
              start-up, and RSS per scheduled message (see bench/memory.py).
``profile``   py-spy samples kumocore's event-loop thread (the bottleneck) while
              ``smtp-source`` keeps it saturated with 2 KB messages (not in the ratio).

The last line is always ``kumocore/postfix end-to-end ratio: X.XX`` (the geometric mean of
the per-size ratios). Slow is informative, never a failure; the exit status is 1 only when
a side delivers nothing (or the harness itself breaks).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.kumocore_side import (
    BenchDns,
    KumocoreInstance,
    KumocoreSettings,
    generate_dkim_key,
    process_cpu_seconds,
)
from bench.load import (
    LoadError,
    SmtpSink,
    SmtpSource,
    free_port,
    missing_tools,
    write_message,
)
from bench.machine import CpuMeter, machine, postfix_version
from bench.postfix import PostfixInstance
from bench.report import (
    RATIO_LINE,
    E2EResult,
    e2e_ratio,
    log,
    print_e2e,
    print_profile,
)
from bench.sections import MODES, Mode, run_http, run_profile, run_scheduled, with_sink

# ----------------------------------------------------------------------------- e2e


def _e2e(
    side: str,
    size: int,
    count: int,
    sessions: int,
    timeout: float,
    message: Path,
    port: int,
    sink: SmtpSink,
    *,
    pid: int | None = None,
) -> E2EResult:
    meter = CpuMeter()
    cpu_before = process_cpu_seconds(pid) if pid else None
    source = SmtpSource(port, count, sessions, message).run(timeout)
    remaining = max(timeout - source.seconds, 1.0)
    result = sink.wait(remaining)
    end = result.last_at if result.complete and result.last_at else time.perf_counter()
    errors = []
    if source.returncode != 0:
        errors.append(f"smtp-source exit {source.returncode}: {source.stderr.strip()[-300:]}")
    mta_cpu = None
    if pid and cpu_before is not None:
        try:
            mta_cpu = process_cpu_seconds(pid) - cpu_before
        except OSError:
            mta_cpu = None
    return E2EResult(
        side=side,
        size=size,
        count=count,
        received=result.received,
        seconds=end - source.started,
        inject_seconds=source.seconds,
        complete=result.complete,
        cpu_busy_cores=meter.busy_cores(),
        mta_cpu_seconds=mta_cpu,
        errors=errors,
    )


def run_postfix_e2e(root: Path, size: int, count: int, mode: Mode, message: Path) -> E2EResult:
    with SmtpSink(count) as sink:
        postfix = PostfixInstance(
            root, smtpd_port=free_port(), relay_port=sink.port, concurrency=20
        )
        try:
            postfix.start()
            result = _e2e(
                "postfix",
                size,
                count,
                mode.sessions,
                mode.e2e_timeout,
                message,
                postfix.smtpd_port,
                sink,
            )
            if not result.complete:
                result.errors.append(f"queue: {postfix.queue_counts()}; {postfix.log_tail(5)}")
            return result
        finally:
            postfix.stop()


def run_kumocore_e2e(
    root: Path, size: int, count: int, mode: Mode, message: Path, base: KumocoreSettings
) -> E2EResult:
    with SmtpSink(count) as sink:
        settings = with_sink(base, sink.port)
        instance = KumocoreInstance(root, settings)
        try:
            instance.start()
            result = _e2e(
                "kumocore",
                size,
                count,
                mode.sessions,
                mode.e2e_timeout,
                message,
                instance.smtp_port,
                sink,
                pid=instance.pid,
            )
            result.errors += instance.errors_logged()[:5]
            return result
        finally:
            instance.stop()


def run_e2e_section(
    root: Path, mode: Mode, base: KumocoreSettings, failures: list[str]
) -> list[E2EResult]:
    """Every size, ``mode.repeats`` times: Postfix, kumocore (and kumocore without DKIM)."""
    sides = ["postfix", "kumocore"] + (["kumocore-nodkim"] if mode.nodkim_row else [])
    results: list[E2EResult] = []
    for size in mode.sizes:
        message = write_message(root, size)
        count = mode.counts[size]
        for repeat in range(mode.repeats):
            for side in sides:
                log(
                    f"e2e: {side}, {count:,} x {size // 1024} KB, {mode.sessions} sessions"
                    + (f" (run {repeat + 1}/{mode.repeats})" if mode.repeats > 1 else "")
                )
                where = root / f"{side}-{size}-{repeat}"
                try:
                    if side == "postfix":
                        result = run_postfix_e2e(where, size, count, mode, message)
                    else:
                        settings = base if side == "kumocore" else with_sink(base, 0, dkim_key=None)
                        result = run_kumocore_e2e(where, size, count, mode, message, settings)
                        result.side = side
                except LoadError as exc:
                    result = E2EResult(
                        side, size, count, 0, 0.0, 0.0, False, 0.0, errors=[str(exc)[:1500]]
                    )
                log(
                    f"  {result.received:,}/{count:,} delivered in {result.seconds:.2f}s: "
                    f"{result.rate:,.0f} msg/s"
                )
                results.append(result)
                if result.received == 0:
                    failures.append(
                        f"{side} delivered nothing ({size // 1024} KB): "
                        f"{'; '.join(result.errors)[:1500]}"
                    )
                shutil.rmtree(where, ignore_errors=True)
    return results


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mode", choices=sorted(MODES), default="short")
    parser.add_argument(
        "--only",
        default="e2e,http,scheduled,profile",
        help="comma-separated sections: e2e,http,scheduled,profile",
    )
    parser.add_argument("--sizes", help="message sizes in bytes, e.g. 2048,51200")
    parser.add_argument("--count", type=int, help="messages per size (both sides)")
    parser.add_argument("--sessions", type=int, help="smtp-source sessions")
    parser.add_argument("--scheduled", type=int, help="messages for the scheduled section")
    parser.add_argument("--http-recipients", type=int, help="recipients for the http section")
    parser.add_argument("--repeats", type=int, help="e2e runs per side and size (median)")
    parser.add_argument("--timeout", type=float, help="seconds per e2e run before giving up")
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="kumocore's event loop (KUMOCORE_EVENT_LOOP; uvloop is its default)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="kumocore serve --workers N for the e2e and http sections (default: one per "
        "core, like Postfix's processes; the scheduled and profile sections use 1)",
    )
    parser.add_argument("--no-dkim", action="store_true", help="kumocore without DKIM signing")
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="profile only the thread holding the GIL (py-spy --gil)",
    )
    parser.add_argument("--no-logs", action="store_true", help="kumocore without local logs")
    parser.add_argument("--workdir", help="parent of the run's temp dir (default: system temp)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, spools)")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    return parser.parse_args(argv)


def build_mode(args: argparse.Namespace) -> Mode:
    base = MODES[args.mode]
    values = asdict(base)
    if args.sizes:
        values["sizes"] = tuple(int(s) for s in args.sizes.split(","))
    sizes = values["sizes"]
    counts = {size: base.counts.get(size, base.counts[min(base.counts)]) for size in sizes}
    if args.count:
        counts = dict.fromkeys(sizes, args.count)
    values["counts"] = counts
    if args.sessions:
        values["sessions"] = args.sessions
    if args.scheduled:
        values["scheduled"] = args.scheduled
        values["breakdown"] = min(base.breakdown, args.scheduled)
    if args.timeout:
        values["e2e_timeout"] = args.timeout
    if args.http_recipients:
        values["http_recipients"] = args.http_recipients
    if args.repeats:
        values["repeats"] = args.repeats
    return Mode(**values)


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = build_mode(args)
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    missing = missing_tools()
    if missing:
        log(f"bench: missing Postfix tools: {', '.join(missing)} (apt-get install postfix)")
        log(RATIO_LINE.format(0.0))
        return 1
    signal.signal(signal.SIGTERM, _terminate)
    root = Path(tempfile.mkdtemp(prefix="kumocore-bench-", dir=args.workdir))
    os.chmod(root, 0o755)  # Postfix's daemons (user postfix) must reach their queue
    started = time.perf_counter()
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "mode": args.mode,
        "workdir": str(root),
        "machine": machine(),
        "postfix": postfix_version(),
        "settings": {
            **asdict(mode),
            "loop": args.loop,
            "workers": args.workers,
            "dkim": not args.no_dkim,
            "local_logs": not args.no_logs,
        },
    }
    failures: list[str] = []
    ratio = 0.0
    try:
        dkim_key, dkim_public = generate_dkim_key(root)
        with BenchDns(dkim_public) as dns:
            base = KumocoreSettings(
                sink_port=0,
                dns=dns.address,
                connections=20,
                http=False,
                dkim_key=None if args.no_dkim else dkim_key,
                local_logs=not args.no_logs,
                loop=args.loop,
                workers=args.workers,
            )
            log(f"kumocore benchmark ({args.mode}), work dir {root}")
            log(f"machine: {report['machine']}; Postfix {report['postfix']}")
            if "e2e" in sections:
                results = run_e2e_section(root, mode, base, failures)
                print_e2e(results)
                ratio, per_size = e2e_ratio(results)
                report["e2e"] = [{**asdict(r), "rate": r.rate} for r in results]
                report["ratio_per_size"] = per_size
                for size, value in per_size.items():
                    log(f"kumocore/postfix at {size // 1024} KB: {value:.2f}")
            if "http" in sections:
                log(
                    f"http: {mode.http_recipients:,} recipients, {mode.http_batch} per request, "
                    f"{mode.http_concurrency} requests in flight"
                )
                try:
                    http = run_http(root, mode, base)
                    report["http"] = {**asdict(http), "rate": http.rate}
                    log(
                        f"  {http.received:,}/{http.recipients:,} delivered in "
                        f"{http.seconds:.2f}s: "
                        f"{http.rate:,.0f} recipients/s (accepted {http.accepted:,} in "
                        f"{http.accept_seconds:.2f}s, failed {http.failed:,})"
                    )
                    for error in http.errors:
                        log(f"  ! {error}")
                    if http.received == 0:
                        failures.append(f"HTTP inject delivered nothing: {http.errors[:2]}")
                except LoadError as exc:
                    report["http"] = {"error": str(exc)[:1500]}
                    failures.append(f"HTTP inject failed: {str(exc)[:1500]}")
            if "scheduled" in sections:
                log(f"scheduled: {mode.scheduled:,} deferred messages in the spool")
                scheduled = run_scheduled(root, mode, base)
                report["scheduled"] = scheduled
                log(
                    f"  recovered {scheduled['recovered_logged']} messages: "
                    f"{scheduled['seconds_to_ready']:.1f}s from start to listening "
                    f"(scan {scheduled['scan_seconds']}s, {scheduled['recovery_rate']:,.0f}/s)"
                )
                log(
                    f"  RSS {scheduled['rss_kib'] / 1024:.0f} MiB (peak "
                    f"{scheduled['peak_rss_kib'] / 1024:.0f} MiB, idle "
                    f"{scheduled['baseline_rss_kib'] / 1024:.0f} MiB): "
                    f"{scheduled['bytes_per_message']:.0f} B per scheduled message "
                    f"(peak {scheduled['peak_bytes_per_message']:.0f} B)"
                )
                log(
                    f"  tracemalloc, {scheduled['breakdown_count']:,} messages: "
                    f"Message {scheduled['breakdown_message_bytes']:.0f} B, "
                    f"queued {scheduled['breakdown_queued_bytes']:.0f} B per message"
                )
                for error in scheduled["errors"]:
                    log(f"  ! {error}")
                if scheduled["recovered_logged"] != mode.scheduled:
                    log(f"  ! expected {mode.scheduled} recovered messages")
            if "profile" in sections:
                log(f"profile: py-spy on kumocore for {mode.profile_seconds}s of 2 KB load")
                message = write_message(root, 2048)
                try:
                    profile = run_profile(root, mode, message, base, gil=args.profile_gil)
                except LoadError as exc:
                    profile = {"skipped": str(exc)[:500]}
                report["profile"] = profile
                print_profile(profile)
    except KeyboardInterrupt as exc:
        failures.append(f"interrupted ({exc})")
    except Exception:  # a harness bug: report it, still end with the ratio line
        failures.append(f"harness error:\n{traceback.format_exc()}")
    finally:
        report["seconds"] = time.perf_counter() - started
        report["ratio"] = ratio
        report["failures"] = failures
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    log(f"total {report['seconds']:.0f}s")
    for failure in failures:
        log(f"FAIL: {failure}")
    log(RATIO_LINE.format(ratio))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
