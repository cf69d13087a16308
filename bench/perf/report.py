"""Benchmark results and how they are printed (the ratio line included)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

RATIO_LINE = "kumocore/postfix end-to-end ratio: {:.2f}"
HARAKA_LINE = "kumocore/haraka end-to-end ratio: {:.2f}"
#: (kumocore side, peer side): like for like, with and without DKIM signing.
POSTFIX_PAIRS = (("kumocore", "postfix"), ("kumocore+dkim", "postfix+opendkim"))
HARAKA_PAIRS = (("kumocore", "haraka"), ("kumocore+dkim", "haraka+dkim"))
#: each kumocore side against its twin from another checkout (``--baseline``)
BASELINE_PAIRS = (("kumocore", "baseline"), ("kumocore+dkim", "baseline+dkim"))


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
    sink_cpu_seconds: float | None = None  # the sink's process (a load tool, shown apart)

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_message(self) -> float | None:
        """The side's own processes (MTA, milter), not the load tools."""
        if not self.mta_cpu_seconds or not self.received:
            return None
        return 1000 * self.mta_cpu_seconds / self.received

    @property
    def sink_cpu_ms_per_message(self) -> float | None:
        if self.sink_cpu_seconds is None or not self.received:
            return None
        return 1000 * self.sink_cpu_seconds / self.received


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


def pair_ratios(
    results: list[E2EResult], pairs: tuple[tuple[str, str], ...]
) -> dict[tuple[str, str, int], float]:
    """median(kumocore side) / median(peer side) for each pair and size both ran."""
    medians = median_rates(results)
    ratios = {}
    for size in sorted({r.size for r in results}):
        for ours, theirs in pairs:
            mine, peer = medians.get((ours, size)), medians.get((theirs, size))
            if mine is not None and peer:
                ratios[(ours, theirs, size)] = mine / peer
    return ratios


def e2e_ratio(
    results: list[E2EResult], pairs: tuple[tuple[str, str], ...] = POSTFIX_PAIRS
) -> tuple[float, dict[tuple[str, str, int], float]]:
    """The geometric mean of :func:`pair_ratios` (0.0 when no pair ran)."""
    ratios = pair_ratios(results, pairs)
    return geometric_mean(list(ratios.values())), ratios


def median_cpu(results: list[E2EResult], *, sink: bool = False) -> dict[tuple[str, int], float]:
    """Median CPU ms per message of each side (``sink``: of its sink) and size."""
    cpu: dict[tuple[str, int], list[float]] = {}
    for r in results:
        value = r.sink_cpu_ms_per_message if sink else r.cpu_ms_per_message
        if value is not None:
            cpu.setdefault((r.side, r.size), []).append(value)
    return {key: statistics.median(values) for key, values in cpu.items()}


def print_e2e(results: list[E2EResult]) -> None:
    """One line per side and size (medians over the repeats), then every run."""
    medians, cpu = median_rates(results), median_cpu(results)
    sink_cpu = median_cpu(results, sink=True)
    log("")
    log("| side | size | runs | msg/s (median) | msg/s (each run) | CPU ms/msg (median) "
        "| sink CPU ms/msg |")
    log("|---|---:|---:|---:|---|---:|---:|")
    order = {side: n for n, side in enumerate(dict.fromkeys(r.side for r in results))}
    for side, size in sorted(medians, key=lambda key: (key[1], order[key[0]])):
        runs = [r for r in results if (r.side, r.size) == (side, size)]
        each = ", ".join(f"{r.rate:,.0f}" + ("" if r.complete else "*") for r in runs)
        per_msg = f"{cpu[(side, size)]:.2f}" if (side, size) in cpu else "-"
        sink_ms = f"{sink_cpu[(side, size)]:.2f}" if (side, size) in sink_cpu else "-"
        log(
            f"| {side} | {size // 1024} KB | {len(runs)} | {medians[(side, size)]:,.0f} | "
            f"{each} | {per_msg} | {sink_ms} |"
        )
    if any(not r.complete for r in results):
        log("(* incomplete: the run timed out before the sink had every message)")
    for r in results:
        for error in r.errors:
            log(f"  ! {r.side} {r.size // 1024} KB: {error}")


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
