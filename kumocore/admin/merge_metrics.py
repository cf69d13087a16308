"""``/metrics`` and ``/metrics.json`` of a node's workers, combined into the node's.

Counters and gauges are summed sample by sample; a few samples are combined by min or max
instead (:func:`combine`). A worker's text at its caps is about 1 MB (25,000 lines), so
the merge is written as steps (:mod:`kumocore.node.stepwise`) that the fan-out runs a
slice at a time: merging eight workers' text at once held the event loop 80 ms.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from kumocore.admin.exposition import CONTENT_TYPE, go_float
from kumocore.admin.peers import PeerAnswer
from kumocore.node.stepwise import Steps, run_whole

__all__ = ["combine", "merge_metrics_json", "merge_metrics_json_steps", "merge_metrics_text",
           "merge_metrics_text_steps", "ok_bodies"]

#: Samples combined by min/max instead of summed (the rest are counts: summed).
_MIN_SAMPLES = {"process_start_time_seconds"}
#: (An auto-suspended source reads 1 however many workers suspended it; every worker
#: measures the same machine's CPU usage, so the system_cpu_usage_* gauges are not added.)
_MAX_SAMPLES = {"kumocore_build_info", "process_max_fds", "egress_source_health_suspended",
                "system_cpu_usage_sum", "system_cpu_usage_normalized"}
#: Lines (or JSON families) merged between two steps.
_LINES_PER_STEP = 2_000


def ok_bodies(local: web.Response, answers: list[PeerAnswer]) -> list[bytes]:
    """The bodies of this worker's and the other workers' 200 answers."""
    own = [local.body] if local.status == 200 and isinstance(local.body, bytes) else []
    return own + [a.body for a in answers if a.status == 200]


def combine(name: str, first: Any, second: Any) -> Any:
    """Two workers' values of sample ``name`` (numbers, or nested label maps) as one."""
    if isinstance(first, dict) and isinstance(second, dict):
        out = dict(first)
        for key, value in second.items():
            out[key] = combine(name, out[key], value) if key in out else value
        return out
    if isinstance(first, int | float) and isinstance(second, int | float):
        if name in _MIN_SAMPLES:
            return min(first, second)
        if name in _MAX_SAMPLES:
            return max(first, second)
        return first + second
    return first


def merge_metrics_json_steps(local: web.Response,
                             answers: list[PeerAnswer]) -> Steps[web.Response]:  # fmt: skip
    merged: dict[str, Any] = {}
    for body in ok_bodies(local, answers):
        metrics = json.loads(body)
        yield
        for n, (name, entry) in enumerate(metrics.items(), 1):
            seen = merged.get(name)
            if seen is None:
                merged[name] = entry
            else:
                seen["value"] = combine(name, seen["value"], entry["value"])
            if n % 50 == 0:  # a family has 7,000 samples at most (histograms at the cap)
                yield
    return web.json_response(merged)


def merge_metrics_json(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    return run_whole(merge_metrics_json_steps(local, answers))


def _lines(bodies: list[bytes]) -> Iterator[list[str]]:
    for body in bodies:
        lines = body.decode("utf-8").splitlines()
        for start in range(0, len(lines), _LINES_PER_STEP):
            yield lines[start:start + _LINES_PER_STEP]


def merge_metrics_text_steps(local: web.Response,
                             answers: list[PeerAnswer]) -> Steps[web.Response]:  # fmt: skip
    """Sum the workers' Prometheus text, sample by sample (name and label text).

    Every worker renders the same families in the same format (kumocore.admin.metrics), so
    the text is merged as text: HELP/TYPE lines once per family, each sample's value
    combined. Label text is kept verbatim (already escaped), which also keeps the names
    exact — prometheus_client's parser would rename counter samples.
    """
    headers: dict[str, list[str]] = {}  # family -> its HELP/TYPE lines
    samples: dict[str, dict[str, float]] = {}  # family -> "name{labels}" -> value
    family = ""
    for some in _lines(ok_bodies(local, answers)):
        for line in some:
            if line.startswith("# "):
                parts = line.split(" ", 3)
                family = parts[2] if len(parts) > 2 else family
                lines = headers.setdefault(family, [])
                if line not in lines:
                    lines.append(line)
                continue
            series, _, value = line.rpartition(" ")
            if not series:
                continue
            values = samples.setdefault(family, {})
            name = series.partition("{")[0]
            number = float(value)
            values[series] = combine(name, values[series], number) if series in values \
                else number  # fmt: skip
        yield
    out: list[str] = []
    for family, lines in headers.items():
        out += [line + "\n" for line in lines]
        out += [f"{series} {go_float(value)}\n"
                for series, value in samples.get(family, {}).items()]  # fmt: skip
        yield
    return web.Response(body="".join(out).encode("utf-8"),
                        headers={"Content-Type": CONTENT_TYPE})  # fmt: skip


def merge_metrics_text(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    return run_whole(merge_metrics_text_steps(local, answers))
