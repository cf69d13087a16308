"""``--baseline TREE``: another checkout's kumocore beside this one, in the same run.

Each kumocore side gets a twin (``baseline``, ``baseline+dkim``) that runs the other
checkout's core and built-in plugins (bench/perf/kumocore_side.py starts it from that
directory), interleaved with every other side, so that a change is measured against the
code before it under the same load at the same time. The twins are in no ratio line; the
``kumocore/baseline at N KB`` lines compare them.
"""

from __future__ import annotations

from pathlib import Path

from bench.perf.e2e import ALL_SIDES, BASELINE_SIDES
from bench.perf.report import BASELINE_PAIRS, E2EResult, log, median_cpu, pair_ratios

__all__ = ["baseline_lines", "expand_sides"]


def baseline_lines(results: list[E2EResult]) -> dict[str, float]:
    """Print, and return, each kumocore side against its baseline twin, per size: the
    ratio of median rates and both median CPU figures."""
    cpu = median_cpu(results)
    found: dict[str, float] = {}
    for (ours, theirs, size), value in pair_ratios(results, BASELINE_PAIRS).items():
        mine, before = cpu.get((ours, size)), cpu.get((theirs, size))
        cpu_text = f", CPU {mine:.2f} / {before:.2f} ms/msg" if mine and before else ""
        log(f"{ours}/{theirs} at {size // 1024} KB: {value:.2f}{cpu_text}")
        found[f"{ours}/{theirs} {size}"] = value
    return found


def expand_sides(sides: list[str], baseline: Path | None) -> list[str]:
    """``sides`` checked, each kumocore side followed by its baseline twin when a
    baseline checkout is given (a baseline side is only known with one)."""
    known = set(ALL_SIDES) | (set(BASELINE_SIDES.values()) if baseline else set())
    unknown = sorted(set(sides) - known)
    if unknown:
        raise SystemExit(f"bench: unknown sides {unknown}; known: {sorted(known)}")
    if baseline is None:
        return sides
    if not (baseline / "kumocore" / "__init__.py").is_file():
        raise SystemExit(f"bench: --baseline {baseline} is not a kumocore checkout")
    expanded: list[str] = []
    for side in sides:
        expanded.append(side)
        twin = BASELINE_SIDES.get(side)
        if twin is not None and twin not in sides:
            expanded.append(twin)
    return expanded
