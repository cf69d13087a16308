"""Benchmark results and how they are printed (the ratio line included)."""

from __future__ import annotations

import collections
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

RATIO_LINE = "kumocore/postfix end-to-end ratio: {:.2f}"


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
