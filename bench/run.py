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
import asyncio
import collections
import json
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.kumocore_side import (
    BenchDns,
    KumocoreInstance,
    KumocoreSettings,
    generate_dkim_key,
    process_cpu_seconds,
    profile_with_py_spy,
    py_spy_path,
    top_functions,
    top_inclusive,
)
from bench.load import (
    LoadError,
    SmtpSink,
    SmtpSource,
    free_port,
    http_inject,
    make_message,
    missing_tools,
    write_message,
)
from bench.postfix import PostfixInstance

RATIO_LINE = "kumocore/postfix end-to-end ratio: {:.2f}"


@dataclass
class Mode:
    sizes: tuple[int, ...]
    counts: dict[int, int]
    sessions: int
    e2e_timeout: float
    http_recipients: int
    http_batch: int
    http_concurrency: int
    scheduled: int
    breakdown: int
    profile_seconds: float
    repeats: int = 1  # e2e runs per side and size; the ratio uses the medians
    nodkim_row: bool = False  # also kumocore without DKIM (informative, not in the ratio)


MODES = {
    # A few minutes on a 2-core machine (CI: must stay under 5 minutes).
    "short": Mode(
        sizes=(2048, 51200),
        counts={2048: 3000, 51200: 1000},
        sessions=20,
        e2e_timeout=45,
        http_recipients=3000,
        http_batch=100,
        http_concurrency=4,
        scheduled=50_000,
        breakdown=20_000,
        profile_seconds=8,
    ),
    "full": Mode(
        sizes=(2048, 51200),
        counts={2048: 30_000, 51200: 10_000},
        sessions=20,
        e2e_timeout=600,
        http_recipients=30_000,
        http_batch=100,
        http_concurrency=4,
        scheduled=1_000_000,
        breakdown=200_000,
        profile_seconds=30,
        repeats=3,
        nodkim_row=True,
    ),
}


@dataclass
class E2EResult:
    side: str
    size: int
    count: int
    received: int
    seconds: float  # first injected → last at the sink (or → timeout)
    inject_seconds: float
    complete: bool
    cpu_busy_cores: float  # whole machine, average during the run
    mta_cpu_seconds: float | None = None  # kumocore's process only
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0


def log(text: str) -> None:
    print(text, flush=True)


# ----------------------------------------------------------------------------- machine


def _cpu_ticks() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]), idle


class CpuMeter:
    def __init__(self) -> None:
        self.total, self.idle = _cpu_ticks()
        self.started = time.perf_counter()

    def busy_cores(self) -> float:
        total, idle = _cpu_ticks()
        seconds = time.perf_counter() - self.started
        ticks = os.sysconf("SC_CLK_TCK")
        busy = (total - self.total) - (idle - self.idle)
        return busy / ticks / seconds if seconds > 0 else 0.0


def machine() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kib = int(fh.readline().split()[1])
    import platform

    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def postfix_version() -> str:
    import subprocess

    from bench.load import tool_path

    try:
        out = subprocess.run(
            [tool_path("postconf") or "postconf", "-d", "-h", "mail_version"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


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
        settings = _with_sink(base, sink.port)
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


def _with_sink(base: KumocoreSettings, port: int, **changes: Any) -> KumocoreSettings:
    values = asdict(base)
    values.update(sink_port=port, **changes)
    return KumocoreSettings(**values)


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
                        settings = (
                            base if side == "kumocore" else _with_sink(base, 0, dkim_key=None)
                        )
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


# ----------------------------------------------------------------------------- http


@dataclass
class HttpResult:
    recipients: int
    received: int
    seconds: float  # first request → last message at the sink
    accept_seconds: float  # first request → last response
    accepted: int
    failed: int
    errors: list[str]

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0


def run_http(root: Path, mode: Mode, base: KumocoreSettings) -> HttpResult:
    content = make_message(2048)
    with SmtpSink(mode.http_recipients) as sink:
        instance = KumocoreInstance(root / "kumocore-http", _with_sink(base, sink.port, http=True))
        try:
            instance.start()
            url = f"http://127.0.0.1:{instance.http_port}/api/inject/v1"
            injected = asyncio.run(
                http_inject(
                    url,
                    recipients=mode.http_recipients,
                    per_request=mode.http_batch,
                    concurrency=mode.http_concurrency,
                    content=content,
                )
            )
            remaining = max(mode.e2e_timeout - (injected.finished - injected.started), 1.0)
            result = sink.wait(remaining)
            end = result.last_at if result.complete and result.last_at else time.perf_counter()
            return HttpResult(
                recipients=mode.http_recipients,
                received=result.received,
                seconds=end - injected.started,
                accept_seconds=injected.finished - injected.started,
                accepted=injected.accepted,
                failed=injected.failed,
                errors=(injected.errors[:3] + instance.errors_logged()[:3]),
            )
        finally:
            instance.stop()


# ----------------------------------------------------------------------------- scheduled


def run_scheduled(root: Path, mode: Mode, base: KumocoreSettings) -> dict[str, Any]:
    from bench.memory import baseline_rss, breakdown
    from bench.recovery import measure_recovery, populate_spool

    body = make_message(2048)
    # Deliveries must not start: the messages are due in an hour, and the "sink" port
    # is closed anyway.
    settings = _with_sink(base, free_port())
    baseline = baseline_rss(root / "kumocore-baseline", settings)
    log(f"  idle kumocore RSS: {baseline / 1024:.1f} MiB")
    var = root / "kumocore-recovery" / "var"
    populated = populate_spool(var, mode.scheduled, body)
    log(
        f"  wrote {populated.count:,} messages into the spool in {populated.seconds:.1f}s "
        f"(meta {populated.meta_bytes / populated.count:.0f} B, "
        f"data {populated.data_bytes / populated.count:.0f} B each)"
    )
    recovery = measure_recovery(
        root / "kumocore-recovery",
        var,
        settings,
        mode.scheduled,
        ready_timeout=max(120.0, mode.scheduled / 1000),
    )
    from bench.memory import ScheduledMemory

    memory = ScheduledMemory(mode.scheduled, baseline, recovery.rss_kib, recovery.peak_rss_kib)
    parts = breakdown(mode.breakdown, body)
    return {
        "count": mode.scheduled,
        "populate_seconds": populated.seconds,
        "meta_record_bytes": populated.meta_bytes / populated.count,
        "data_record_bytes": populated.data_bytes / populated.count,
        "seconds_to_ready": recovery.seconds_to_ready,
        "scan_seconds": recovery.scan_seconds,
        "recovered_logged": recovery.recovered_logged,
        "recovery_rate": recovery.messages_per_second,
        "baseline_rss_kib": baseline,
        "rss_kib": recovery.rss_kib,
        "peak_rss_kib": recovery.peak_rss_kib,
        "bytes_per_message": memory.bytes_per_message,
        "peak_bytes_per_message": memory.peak_bytes_per_message,
        "breakdown_count": parts.count,
        "breakdown_message_bytes": parts.message_bytes,
        "breakdown_queued_bytes": parts.queued_bytes,
        "errors": recovery.errors,
    }


# ----------------------------------------------------------------------------- profile


def run_profile(
    root: Path, mode: Mode, message: Path, base: KumocoreSettings, *, gil: bool = False
) -> dict[str, Any]:
    """py-spy on kumocore while smtp-source keeps it saturated; the load is then stopped."""
    import subprocess

    if py_spy_path() is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    output = root / "profile.collapsed"
    unlimited = 10_000_000
    with SmtpSink(unlimited) as sink:
        instance = KumocoreInstance(root / "kumocore-profile", _with_sink(base, sink.port))
        source = None
        try:
            instance.start()
            main_thread = instance.pid
            source = subprocess.Popen(
                SmtpSource(instance.smtp_port, unlimited, mode.sessions, message).command(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)  # past connection set-up: sample the steady state
            before, cpu_before = sink.received, process_cpu_seconds(instance.pid)
            spy = profile_with_py_spy(instance.pid, output, mode.profile_seconds, gil=gil)
            _, spy_err = spy.communicate(timeout=mode.profile_seconds + 60)
            delivered = sink.received - before
            cpu = process_cpu_seconds(instance.pid) - cpu_before
        finally:
            if source is not None:
                source.kill()
                source.wait()
            instance.stop()
    # The event loop's thread (its id is the process id) is the bottleneck; the spool
    # writer threads mostly wait in fdatasync, which py-spy does not always see as idle.
    samples, entries = top_functions(output, 25, thread=main_thread)
    all_samples, _ = top_functions(output, 1)
    prefixes = ("kumocore/", "kumocore_", "aiosmtpd/", "bench_policy")
    inclusive = top_inclusive(output, prefixes, 25, thread=main_thread)
    if samples == 0:
        return {"skipped": f"py-spy recorded nothing: {spy_err.decode(errors='replace')[-300:]}"}
    return {
        "samples": samples,
        "message_size": message.stat().st_size,
        "all_thread_samples": all_samples,
        "main_thread_busy": samples / (100.0 * mode.profile_seconds),
        "gil_only": gil,
        "seconds": mode.profile_seconds,
        "rate_under_profiler": delivered / mode.profile_seconds,
        "kumocore_cpu_cores": cpu / mode.profile_seconds,
        "collapsed": str(output),
        "own": [asdict(e) for e in entries],
        "inclusive": [asdict(e) for e in inclusive],
    }


# ----------------------------------------------------------------------------- report


def geometric_mean(values: list[float]) -> float:
    if not values or any(v <= 0 for v in values):
        return 0.0
    return math.exp(sum(math.log(v) for v in values) / len(values))


def median_rates(results: list[E2EResult]) -> dict[tuple[str, int], float]:
    rates: dict[tuple[str, int], list[float]] = {}
    for r in results:
        rates.setdefault((r.side, r.size), []).append(r.rate)
    return {key: statistics.median(values) for key, values in rates.items()}


def e2e_ratio(results: list[E2EResult]) -> tuple[float, dict[int, float]]:
    """Geometric mean over sizes of median(kumocore) / median(postfix)."""
    medians = median_rates(results)
    per_size = {}
    for size in sorted({r.size for r in results}):
        postfix, kumocore = medians.get(("postfix", size)), medians.get(("kumocore", size))
        if postfix and kumocore is not None:
            per_size[size] = kumocore / postfix
    return geometric_mean(list(per_size.values())), per_size


def print_e2e(results: list[E2EResult]) -> None:
    log("")
    log(
        "| side | size | messages | delivered | seconds | msg/s | inject msg/s | "
        "machine CPU (cores) | kumocore CPU ms/msg |"
    )
    log("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        inject = r.count / r.inject_seconds if r.inject_seconds > 0 else 0.0
        per_msg = (
            f"{1000 * r.mta_cpu_seconds / r.received:.2f}"
            if r.mta_cpu_seconds and r.received
            else "-"
        )
        flag = "" if r.complete else " (incomplete)"
        log(
            f"| {r.side} | {r.size // 1024} KB | {r.count:,} | {r.received:,}{flag} | "
            f"{r.seconds:.2f} | {r.rate:,.0f} | {inject:,.0f} | {r.cpu_busy_cores:.2f} | "
            f"{per_msg} |"
        )
    for r in results:
        for error in r.errors:
            log(f"  ! {r.side} {r.size // 1024} KB: {error}")
    if any(n > 1 for n in collections.Counter((r.side, r.size) for r in results).values()):
        log("")
        for (side, size), rate in sorted(
            median_rates(results).items(), key=lambda kv: (kv[0][1], kv[0][0])
        ):
            log(f"median {side} {size // 1024} KB: {rate:,.0f} msg/s")


def print_profile(profile: dict[str, Any]) -> None:
    if "skipped" in profile:
        log(f"profile: skipped ({profile['skipped']})")
        return
    which = "while holding the GIL" if profile["gil_only"] else "non-idle"
    log(
        f"\nprofile: event-loop thread {which} in {profile['samples']} of "
        f"{int(100 * profile['seconds'])} samples ({100 * profile['main_thread_busy']:.0f}%; "
        f"py-spy, 100 Hz, {profile['seconds']}s of "
        f"{profile['message_size'] / 1024:.0f} KB messages; "
        f"{profile['rate_under_profiler']:,.0f} msg/s delivered meanwhile; kumocore process "
        f"at {profile['kumocore_cpu_cores']:.2f} cores). Percentages are of the event-loop "
        "thread's samples; top by own time:"
    )
    log("| own % | total % | function |")
    log("|---:|---:|---|")
    for entry in profile["own"][:20]:
        log(
            f"| {entry['own_percent']:.1f} | {entry['total_percent']:.1f} | `{entry['function']}` |"
        )
    log("\nevent-loop thread, kumocore/aiosmtpd frames by inclusive time:")
    log("| total % | own % | function |")
    log("|---:|---:|---|")
    for entry in profile["inclusive"][:20]:
        log(
            f"| {entry['total_percent']:.1f} | {entry['own_percent']:.1f} | `{entry['function']}` |"
        )


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
