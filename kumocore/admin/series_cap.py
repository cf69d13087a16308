"""The cap on a labelled metric's series: at most ``cap`` of them, the rest summed into
one labelled ``other``, so a flood of one-off domains cannot blow up Prometheus.

Gauges keep the largest values (what an operator looks for). Counters keep the first
labels in insertion order instead: that set never changes once the cap is reached, so
``other`` only ever grows and rate() sees no false counter resets.

A scrape may rank 100,000 domains to keep 499 of them: done at once, the families of a
full node held the event loop (and every SMTP client on it) for 0.4 s per scrape. So the
work is written as steps (:mod:`kumocore.node.stepwise`): a family stream
(:data:`Families`) yields ``None`` wherever the scrape may let the loop run, between
families and every :data:`CHUNK` series inside a large one; :mod:`kumocore.admin.scrape`
runs it a slice at a time, and :func:`families` runs it whole for the synchronous callers.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Generator, Hashable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client.metrics_core import Metric

from kumocore.node.stepwise import Steps, run_whole

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison

__all__ = [
    "CHUNK",
    "Families",
    "capped",
    "capped_family",
    "capped_series",
    "capped_steps",
    "chunks",
    "families",
    "single_family",
    "smallest_steps",
    "stepped",
    "table_steps",
]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
S = TypeVar("S", bound="SupportsRichComparison")

#: Series ranked or summed between two points where a scrape may yield (a few ms' work).
CHUNK = 2_000

#: Metric families, with ``None`` between them where a scrape may let the loop run.
Families = Generator[Metric | None, None, None]


def capped_steps(
    values: Mapping[K, float], cap: int, other: K, *, by_value: bool
) -> Steps[list[tuple[K, float]]]:
    """At most ``cap`` (key, value) pairs, the remainder summed under ``other`` (a key
    that is itself kept absorbs them); a step every :data:`CHUNK` series."""
    if len(values) <= cap:
        return list(values.items())
    items = yield from _pairs(values)
    kept = (yield from _largest(items, cap - 1)) if by_value else items[: cap - 1]
    merged = dict(kept)
    rest: float = 0
    for start in range(0, len(items), CHUNK):
        rest += sum(value for key, value in items[start:start + CHUNK] if key not in merged)
        yield
    merged[other] = merged.get(other, 0) + rest
    return list(merged.items())


def _pairs(values: Mapping[K, float]) -> Steps[list[tuple[K, float]]]:
    """``list(values.items())`` a chunk at a time: the keys are copied in one call (the
    live mapping may change while the loop runs), the pairs made in steps (making 100,000
    of them at once took 10 ms). A key gone meanwhile is left out."""
    keys = list(values)
    items: list[tuple[K, float]] = []
    for start in range(0, len(keys), CHUNK):
        items += [(key, value) for key in keys[start:start + CHUNK]
                  if (value := values.get(key)) is not None]  # fmt: skip
        yield
    return items


def _largest(items: list[tuple[K, float]], count: int) -> Steps[list[tuple[K, float]]]:
    """``heapq.nlargest(count, items)`` by value, a chunk at a time (the best so far come
    first in each round, so ties keep the earlier series, as one nlargest would)."""
    best: list[tuple[K, float]] = []
    for start in range(0, len(items), CHUNK):
        chunk = items[start:start + CHUNK]
        best = heapq.nlargest(count, itertools.chain(best, chunk), key=itemgetter(1))
        yield
    return best


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """``items`` copied at once (a live view may change between steps), in lists of
    ``size``: a caller yields a step after each."""
    copied = list(items)
    for start in range(0, len(copied), size):
        yield copied[start:start + size]


def smallest_steps(runs: Iterable[list[S]], count: int) -> Steps[list[S]]:
    """The ``count`` smallest items of ``runs`` (lists, e.g. of sort keys), in order.

    Each run is sorted on its own (a step each), then the sorted runs are merged, a few
    thousand items per step: no call ever sorts or heapifies them all at once, which for
    100,000 items is tens of milliseconds, and for a million, a second."""
    sorted_runs: list[list[S]] = []
    for run in runs:
        run.sort()
        sorted_runs.append(run[:count])
        yield
    smallest: list[S] = []
    merged = heapq.merge(*sorted_runs)
    while len(smallest) < count:
        before = len(smallest)
        smallest += itertools.islice(merged, min(CHUNK, count - before))
        if len(smallest) == before:
            break
        yield
    return smallest


def table_steps(items: Sequence[T], entry: Callable[[T], tuple[K, float]]) -> Steps[dict[K, float]]:
    """``dict(map(entry, items))``, a chunk at a time (``items``: a copy of the live
    collection, which may change between steps)."""
    table: dict[K, float] = {}
    for start in range(0, len(items), CHUNK):
        table.update(map(entry, items[start:start + CHUNK]))
        yield
    return table


def capped(
    values: Mapping[K, float], cap: int, other: K, *, by_value: bool
) -> list[tuple[K, float]]:
    """:func:`capped_steps`, at once."""
    return run_whole(capped_steps(values, cap, other, by_value=by_value))


def capped_series(
    name: str, documentation: str, kind: str, labels: tuple[str, ...],
    values: Mapping[Any, float], cap: int, other: str,
) -> Families:
    """A metric family of ``values`` keyed by its one label's value, or by a tuple of
    ``labels``' values; capped (gauges keep their largest series, counters their first),
    the rest under ``other`` in every label. Steps (``None``), then the family."""
    other_key: str | tuple[str, ...] = other if len(labels) == 1 else (other,) * len(labels)
    pairs = yield from capped_steps(values, cap, other_key, by_value=kind == "gauge")
    metric = Metric(name, documentation, kind)
    for key, value in pairs:
        label_values = key if isinstance(key, tuple) else (key,)
        metric.add_sample(name, dict(zip(labels, label_values, strict=True)), value)
    yield metric


def capped_family(
    name: str, documentation: str, kind: str, labels: tuple[str, ...],
    values: Mapping[Any, float], cap: int, other: str,
) -> Metric:
    """:func:`capped_series`' family, built at once."""
    (metric,) = families(capped_series(name, documentation, kind, labels, values, cap, other))
    return metric


def stepped(metrics: Iterable[Metric]) -> Families:
    """Families from a plain iterator (small ones), with a step after each."""
    for metric in metrics:
        yield metric
        yield None


def families(stream: Iterator[Metric | None]) -> list[Metric]:
    """The families of ``stream``, run at once."""
    return [metric for metric in stream if metric is not None]


def single_family(name: str, documentation: str, kind: str, value: float) -> Metric:
    """A family of one unlabelled series (nothing to cap)."""
    metric = Metric(name, documentation, kind)
    metric.add_sample(name, {}, value)
    return metric
