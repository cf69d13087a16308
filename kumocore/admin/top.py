"""``kumocore top``: a live terminal view of a node's queues, rates and outcomes.

Like KumoMTA's ``kcli top``, it is a client of the admin API and nothing else: every
``--interval`` seconds it reads ``/metrics.json`` (counters) and the queue summary, and
shows per-second rates computed from the counter differences, the ready queues (egress
paths) with their connections against the limit, and the largest scheduled queues.
``--once`` prints a single frame (two samples, ``--interval`` apart) and exits, for
scripts and tests.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

#: (label, metric name in /metrics.json) of the counters shown as rates.
RATES = (
    ("received", "total_messages_received"),
    # The node's totals: KumoMTA's total_messages_* count only attempts over a path, and
    # twice (per protocol and per path).
    ("delivered", "kumocore_messages_delivered_total"),
    ("transient failures", "kumocore_messages_transfail_total"),
    ("bounced", "kumocore_messages_fail_total"),
    ("expired", "total_messages_expired"),
)
#: Rows shown per table; the rest are summed in a last "… N more" row.
MAX_ROWS = 15

Fetch = Callable[[str], Any]


@dataclass(frozen=True)
class Sample:
    at: float
    counters: dict[str, float]
    summary: dict[str, Any]


def _total(value: Any) -> float:
    """A counter's value: a number, or the sum over its labels (``{label: {value: n}}``)."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping):
        return sum(_total(v) for v in value.values())
    return 0.0


def take_sample(fetch: Fetch) -> Sample:
    metrics = fetch("/metrics.json")
    counters = {name: _total(metrics.get(name, {}).get("value", 0)) for _, name in RATES}
    return Sample(time.monotonic(), counters, fetch("/api/admin/queue-summary/v1"))


def rates(before: Sample, after: Sample) -> dict[str, float]:
    seconds = max(after.at - before.at, 1e-6)
    return {label: max(after.counters[name] - before.counters[name], 0.0) / seconds
            for label, name in RATES}  # fmt: skip


def render(before: Sample, after: Sample, endpoint: str) -> Group:
    totals = after.summary.get("totals", {})
    head = Table.grid(padding=(0, 2))
    head.add_row(f"[b]kumocore top[/b]  {endpoint}", time.strftime("%H:%M:%S"),
                 f"messages {totals.get('messages', 0)}",
                 f"connections {totals.get('connections', 0)}")  # fmt: skip
    rate_table = Table(title="per second", title_justify="left", box=None)
    for label in rates(before, after):
        rate_table.add_column(label, justify="right")
    rate_table.add_row(*(f"{value:,.1f}" for value in rates(before, after).values()))
    return Group(head, rate_table, _ready_table(after.summary), _scheduled_table(after.summary))


def _ready_table(summary: Mapping[str, Any]) -> Table:
    table = Table(title="ready queues (egress paths)", title_justify="left")
    for column in ("source", "site", "ready", "connections"):
        table.add_column(column, justify="right" if column != "site" else "left")
    entries = list(summary.get("ready", []))
    for entry in entries[:MAX_ROWS]:
        table.add_row(entry["source"], entry["site"], str(entry["count"]),
                      f"{entry['connections']}/{entry['connection_limit']}")  # fmt: skip
    _more(table, entries, 4)
    return table


def _scheduled_table(summary: Mapping[str, Any]) -> Table:
    table = Table(title="scheduled queues", title_justify="left")
    for column in ("queue", "pool", "waiting"):
        table.add_column(column, justify="right" if column == "waiting" else "left")
    entries = list(summary.get("scheduled", []))
    for entry in entries[:MAX_ROWS]:
        table.add_row(entry["name"], entry["egress_pool"], str(entry["count"]))
    _more(table, entries, 3)
    return table


def _more(table: Table, entries: list[Any], columns: int) -> None:
    if len(entries) > MAX_ROWS:
        rest = sum(int(e.get("count", 0)) for e in entries[MAX_ROWS:])
        table.add_row(f"… {len(entries) - MAX_ROWS} more", *[""] * (columns - 2), str(rest))


def run_top(fetch: Fetch, endpoint: str, *, interval: float, once: bool,
            console: Console | None = None) -> int:  # fmt: skip
    console = console or Console()
    before = take_sample(fetch)
    time.sleep(interval)
    after = take_sample(fetch)
    if once:
        console.print(render(before, after, endpoint))
        return 0
    with Live(render(before, after, endpoint), console=console, screen=False,
              auto_refresh=False) as live:  # fmt: skip
        try:
            while True:
                time.sleep(interval)
                before, after = after, take_sample(fetch)
                live.update(render(before, after, endpoint), refresh=True)
        except KeyboardInterrupt:
            return 0


def add_top_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between samples (default 1)")  # fmt: skip
    parser.add_argument("--once", action="store_true",
                        help="print one frame (two samples) and exit")  # fmt: skip
