"""The end-to-end section: every side relays the same messages to its own sink.

Sides (each a private instance in the run's temp dir, all started once per run):

====================  =====================================================================
``postfix``           Postfix, no signing
``postfix+opendkim``  the same Postfix set-up with OpenDKIM as its milter (bench/perf/opendkim.py)
``kumocore``          ``kumocore serve --workers N``, no signing
``kumocore+dkim``     the same, signing every message
``haraka``            Haraka in cluster mode, outbound disk queue (bench/perf/haraka.py)
``haraka+dkim``       the same with ``haraka-plugin-dkim``
``baseline``          with ``--baseline TREE``: ``kumocore`` as another checkout has it
``baseline+dkim``     the same, signing (neither twin is in a ratio line)
====================  =====================================================================

Every signing side uses the same RSA-2048 key, relaxed/relaxed and the same five headers.
Before timing, each side relays a checked sample (bench/perf/sample.py: it is queued on disk,
and it is signed, or not, as the side must) and a warm-up batch. Then, for each size and
repeat, the sides take turns (the order rotates each repeat, so no side always runs first
on a cold cache): ``smtp-source`` injects ``count`` messages over ``sessions`` connections
and the run ends when that side's sink has counted them all.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.perf.haraka import HarakaInstance, haraka_missing
from bench.perf.kumocore_side import KumocoreInstance, KumocoreSettings, process_cpu_seconds
from bench.perf.load import LoadError, SmtpSink, SmtpSource, free_port, write_message
from bench.perf.machine import CpuMeter
from bench.perf.opendkim import OpenDkim, opendkim_missing
from bench.perf.postfix import PostfixInstance
from bench.perf.report import E2EResult, log
from bench.perf.sample import SAMPLE_DOMAIN, CaptureServer, SampleCheck, check_side
from bench.perf.sections import Mode

ALL_SIDES = ("postfix", "postfix+opendkim", "kumocore", "kumocore+dkim", "haraka", "haraka+dkim")
#: kumocore from another checkout (``--baseline``), each the twin of a kumocore side.
BASELINE_SIDES = {"kumocore": "baseline", "kumocore+dkim": "baseline+dkim"}
UNLIMITED = 1_000_000_000


@dataclass
class Side:
    """One running relay under test, its sink, and how to read its CPU and its queue."""

    name: str
    port: int
    sink: SmtpSink
    pids: list[int]
    queue_dirs: list[Path]
    parts: list[Any] = field(default_factory=list)  # instances, stopped in reverse order

    @property
    def signs(self) -> bool:
        return "+" in self.name

    def cpu_seconds(self) -> float | None:
        try:
            return sum(process_cpu_seconds(pid) for pid in self.pids)
        except OSError:
            return None

    def sink_cpu_seconds(self) -> float | None:
        try:
            return process_cpu_seconds(self.sink.pid) if self.sink.pid else None
        except OSError:
            return None

    def errors(self) -> list[str]:
        found: list[str] = []
        for part in self.parts:
            if hasattr(part, "errors_logged"):
                found += part.errors_logged()[:5]
        return found

    def stop(self) -> None:
        for part in reversed(self.parts):
            with contextlib.suppress(Exception):
                part.stop()
        self.sink.stop()


def unavailable(name: str) -> str | None:
    """Why side ``name`` cannot run on this machine, or None."""
    if name.startswith("haraka"):
        return haraka_missing()
    if name == "postfix+opendkim":
        return opendkim_missing()
    return None


def start_side(
    name: str,
    root: Path,
    base: KumocoreSettings,
    key: Path,
    sample_port: int,
    baseline: Path | None = None,
    sink_program: str | None = None,
) -> Side:
    where = root / name.replace("+", "-")
    sink = SmtpSink(UNLIMITED, program=sink_program).start()
    side = Side(name, 0, sink, [], [])
    try:
        if name.startswith("postfix"):
            milter = None
            if name == "postfix+opendkim":
                milter = OpenDkim(where, key).start()
                side.parts.append(milter)
            postfix = PostfixInstance(
                where,
                smtpd_port=free_port(),
                relay_port=sink.port,
                concurrency=base.connections,
                milter=milter.socket if milter else None,
                sample=(SAMPLE_DOMAIN, sample_port),
            )
            side.parts.append(postfix)
            postfix.start()
            master = postfix.master_pid()
            if master is None:
                raise LoadError(f"{name}: no master.pid after start")
            side.port, side.queue_dirs = postfix.smtpd_port, [postfix.queue]
            side.pids = [master] + ([milter.pid] if milter else [])
        elif name.startswith(("kumocore", "baseline")):
            tree = None
            if name.startswith("baseline"):
                if baseline is None:
                    raise LoadError(f"{name}: no --baseline checkout given")
                tree = baseline
            settings = KumocoreSettings(
                **{
                    **base.__dict__,
                    "sink_port": sink.port,
                    "sample_port": sample_port,
                    "dkim_key": key if name.endswith("+dkim") else None,
                    "tree": tree,
                }
            )
            instance = KumocoreInstance(where, settings)
            side.parts.append(instance)
            instance.start()
            side.port, side.pids, side.queue_dirs = (
                instance.smtp_port,
                [instance.pid],
                [instance.var],
            )
        else:
            haraka = HarakaInstance(
                where,
                smtpd_port=free_port(),
                relay_port=sink.port,
                sample_port=sample_port,
                sample_domain=SAMPLE_DOMAIN,
                dkim_key=key if name == "haraka+dkim" else None,
                nodes=base.workers,
                connections=base.connections,
            )
            side.parts.append(haraka)
            haraka.start()
            side.port, side.pids, side.queue_dirs = haraka.smtpd_port, [haraka.pid], [haraka.queue]
    except BaseException:
        side.stop()
        raise
    return side


def run_batch(
    side: Side, size: int, count: int, sessions: int, timeout: float, message: Path
) -> E2EResult:
    """``count`` messages through ``side``: first injected → last counted by its sink."""
    total = side.sink.expect(count)
    meter = CpuMeter()
    cpu_before, sink_before = side.cpu_seconds(), side.sink_cpu_seconds()
    source = SmtpSource(side.port, count, sessions, message).run(timeout)
    reached = side.sink.wait_total(max(timeout - source.seconds, 1.0))
    end = reached if reached is not None else time.perf_counter()
    cpu_after, sink_after = side.cpu_seconds(), side.sink_cpu_seconds()
    errors = []
    if source.returncode != 0:
        errors.append(f"smtp-source exit {source.returncode}: {source.stderr.strip()[-300:]}")
    received = count - max(total - side.sink.received, 0)
    return E2EResult(
        side=side.name,
        size=size,
        count=count,
        received=min(received, count),
        seconds=end - source.started,
        inject_seconds=source.seconds,
        complete=reached is not None,
        cpu_busy_cores=meter.busy_cores(),
        mta_cpu_seconds=(
            cpu_after - cpu_before if cpu_after is not None and cpu_before is not None else None
        ),
        errors=errors,
        sink_cpu_seconds=(
            sink_after - sink_before if sink_after is not None and sink_before is not None
            else None
        ),
    )


@dataclass
class E2ESection:
    results: list[E2EResult]
    checks: list[SampleCheck]
    skipped: dict[str, str]  # side → why it did not run


def run_e2e(
    root: Path,
    mode: Mode,
    base: KumocoreSettings,
    key: Path,
    dkim_public: str,
    wanted: list[str],
    failures: list[str],
    *,
    strict: bool,
    baseline: Path | None = None,
) -> E2ESection:
    """Start every wanted side, check a sample, warm up, then the interleaved timed runs.

    ``strict`` (full mode): a side that cannot run, or whose sample check fails, is a
    failure; otherwise (short mode) it is reported and the run goes on without it.
    """
    section = E2ESection([], [], {})
    sides: list[Side] = []
    with CaptureServer() as capture:
        try:
            for name in wanted:
                reason = unavailable(name)
                if reason is None:
                    try:
                        log(f"e2e: starting {name}")
                        sides.append(
                            start_side(name, root, base, key, capture.port, baseline,
                                       mode.sink_program or None))
                        continue
                    except LoadError as exc:
                        reason = f"did not start: {str(exc)[:1200]}"
                section.skipped[name] = reason
                log(f"e2e: {name} NOT RUN: {reason}")
                if strict or not (name.startswith("haraka") or name == "postfix+opendkim"):
                    failures.append(f"{name} could not run: {reason[:1500]}")
            for side in sides:
                check = check_side(side.name, side.port, side.queue_dirs, capture, dkim_public)
                section.checks.append(check)
                log(f"e2e: {side.name} sample: {check.detail}")
                for problem in check.problems(must_sign=side.signs):
                    log(f"  ! {problem}")
                    if strict:
                        failures.append(problem)
            warm = write_message(root, 2048)
            for side in sides if mode.warmup > 0 else []:
                run_batch(side, 2048, mode.warmup, mode.sessions, mode.e2e_timeout, warm)
            for size in mode.sizes:
                message = write_message(root, size)
                count = mode.counts[size]
                for repeat in range(mode.repeats):
                    shift = repeat % max(len(sides), 1)
                    for side in sides[shift:] + sides[:shift]:
                        result = run_batch(
                            side, size, count, mode.sessions, mode.e2e_timeout, message
                        )
                        if not result.complete:
                            result.errors += side.errors()
                        log(
                            f"e2e: {side.name:<17} {size // 1024:>3} KB run {repeat + 1}/"
                            f"{mode.repeats}: {result.received:,}/{count:,} in "
                            f"{result.seconds:.2f}s = {result.rate:,.0f} msg/s"
                            + (
                                f", {result.cpu_ms_per_message:.2f} CPU ms/msg"
                                if result.cpu_ms_per_message
                                else ""
                            )
                            + (
                                f" (sink {result.sink_cpu_ms_per_message:.2f})"
                                if result.sink_cpu_ms_per_message is not None
                                else ""
                            )
                        )
                        section.results.append(result)
                        if result.received == 0:
                            failures.append(
                                f"{side.name} delivered nothing ({size // 1024} KB): "
                                f"{'; '.join(result.errors)[:1500]}"
                            )
        finally:
            for side in sides:
                side.stop()
    return section
