"""Benchmark settings per mode, and the sections beyond end-to-end: HTTP, scheduled, profile."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.perf.kumocore_side import (
    KumocoreInstance,
    KumocoreSettings,
    data_kind_for,
    meta_kind_for,
    process_cpu_seconds,
    profile_with_py_spy,
    py_spy_path,
    top_functions,
    top_inclusive,
)
from bench.perf.load import (
    KC_SINK,
    SmtpSink,
    SmtpSource,
    free_port,
    http_inject,
    make_message,
)
from bench.perf.report import (
    log,
)


def with_sink(base: KumocoreSettings, port: int, **changes: Any) -> KumocoreSettings:
    """The same kumocore settings, delivering to the sink on ``port``."""
    values = asdict(base)
    values.update(sink_port=port, **changes)
    return KumocoreSettings(**values)


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
    repeats: int = 1  # e2e runs per side and size, interleaved; the ratios use the medians
    warmup: int = 200  # 2 KB messages through each side before anything is timed
    openssl_seconds: int = 1  # `openssl speed -seconds N rsa2048`
    sink: str = KC_SINK  # which sink counts the messages (bench/perf/load.py: SINKS)
    sink_program: str = ""  # its path, set once the run has a directory (sink_program())


MODES = {
    # CI-sized: about 4-5 minutes on a loaded 2-core machine, all six sides included.
    "short": Mode(
        sizes=(2048, 51200, 102400),
        counts={2048: 1500, 51200: 600, 102400: 400},
        sessions=20,
        e2e_timeout=90,
        http_recipients=3000,
        http_batch=100,
        http_concurrency=4,
        scheduled=50_000,
        breakdown=20_000,
        profile_seconds=8,
        repeats=3,
        warmup=300,
    ),
    "full": Mode(
        sizes=(2048, 51200, 102400),
        counts={2048: 10_000, 51200: 4_000, 102400: 3_000},
        sessions=20,
        e2e_timeout=600,
        http_recipients=30_000,
        http_batch=100,
        http_concurrency=4,
        scheduled=1_000_000,
        breakdown=200_000,
        profile_seconds=30,
        repeats=3,
        warmup=1000,
        openssl_seconds=3,
    ),
}


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
    with SmtpSink(mode.http_recipients, program=mode.sink_program or None) as sink:
        instance = KumocoreInstance(root / "kumocore-http", with_sink(base, sink.port, http=True))
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
    from bench.perf.memory import baseline_rss, breakdown
    from bench.perf.recovery import measure_recovery, populate_spool

    body = make_message(2048)
    # Deliveries must not start: the messages are due in an hour, and the "sink" port
    # is closed anyway.
    # One process: the figures are per process (RSS) and per spool (recovery scan).
    settings = with_sink(base, free_port(), workers=1)
    baseline = baseline_rss(root / "kumocore-baseline", settings)
    log(f"  idle kumocore RSS: {baseline / 1024:.1f} MiB")
    var = root / "kumocore-recovery" / "var"
    populated = populate_spool(var, mode.scheduled, body, data_kind=data_kind_for(settings),
                               meta_kind=meta_kind_for(settings))
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
    from bench.perf.memory import ScheduledMemory

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
    with SmtpSink(unlimited, program=mode.sink_program or None) as sink:
        # One worker: py-spy samples one event loop, the thing that limits a worker.
        settings = with_sink(base, sink.port, workers=1)
        instance = KumocoreInstance(root / "kumocore-profile", settings)
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
