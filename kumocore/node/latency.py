"""KumoMTA's latency histograms: cheap to observe on the message path, read at scrape.

KumoMTA exports its latencies (``smtpsrv_transaction_duration``, ``message_save_latency``,
``lua_event_latency``...) as Prometheus histograms with the client library's default
buckets, 5 ms to 10 s. A dashboard built for KumoMTA draws heatmaps from the
``_bucket`` series, so kumocore keeps the same names, buckets and ``le`` label text
(``le="1"``, ``le="10"``, as KumoMTA writes them, not Python's ``1.0``).

A message passes several of these on its way, so an observation is one ``bisect`` and two
additions on a plain object (no lock: each histogram belongs to one event loop, and a
worker thread that observes one owns it alone). The cumulative bucket counts that
Prometheus wants are computed only when ``/metrics`` is read. Several workers' text is
summed sample by sample (:mod:`kumocore.admin.merge`), which is how histograms add up.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Generator, Mapping

from prometheus_client.metrics_core import Metric

from kumocore.capped_keys import capped_entry
from kumocore.node.stepwise import Steps

__all__ = ["BUCKETS", "USER_LATENCY", "Histogram", "LabelledHistograms", "histogram_family",
           "histogram_series", "multi_label_family", "observe_user_latency"]

#: Upper bounds in seconds, as KumoMTA's histograms have them (Prometheus' defaults).
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: ``le`` label texts, in KumoMTA's spelling, then the catch-all bucket.
_LE = (*(f"{bound:g}" for bound in BUCKETS), "+Inf")


class Histogram:
    """Observations in :data:`BUCKETS` (not cumulative: ``counts[i]`` holds the values in
    ``(BUCKETS[i-1], BUCKETS[i]]``, the last one those above 10 s) and their sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        # A value equal to a bound belongs to that bound's bucket ("less or equal").
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def merged(self, other: Histogram) -> Histogram:
        """A new histogram holding both (series folded into ``other`` past the cap)."""
        both = Histogram()
        both.absorb(self)
        both.absorb(other)
        return both

    def absorb(self, other: Histogram) -> None:
        """Add ``other``'s observations to this one's (in place: folding 10,000 series
        into one made 10,000 throwaway histograms)."""
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.sum += other.sum


class LabelledHistograms:
    """One histogram per value of a label (``service``, ``event``), made on first use.

    ``max_series`` bounds what a label fed by a policy can make: past it, a new value is
    observed as ``other`` (the scrape caps what it shows at a lower number anyway)."""

    __slots__ = ("max_series", "series")

    def __init__(self, max_series: int = 10_000) -> None:
        self.series: dict[str, Histogram] = {}
        self.max_series = max_series

    def labels(self, value: str) -> Histogram:
        # A known label (the message path's case) costs this one lookup.
        histogram = self.series.get(value)
        if histogram is None:
            histogram = capped_entry(self.series, value, self.max_series, "other",
                                     lambda _label: Histogram())  # fmt: skip
        return histogram

    def observe(self, value: str, seconds: float) -> None:
        self.labels(value).observe(seconds)


def _add_series(metric: Metric, name: str, labels: dict[str, str], histogram: Histogram) -> None:
    cumulative = 0
    for le, count in zip(_LE, histogram.counts, strict=True):
        cumulative += count
        metric.add_sample(f"{name}_bucket", {**labels, "le": le}, cumulative)
    metric.add_sample(f"{name}_sum", labels, histogram.sum)
    metric.add_sample(f"{name}_count", labels, cumulative)


#: Series ranked, folded or written out between two points where a scrape may yield.
_CHUNK = 200

#: Metric families, with ``None`` where a scrape may let the loop run
#: (:data:`kumocore.admin.series_cap.Families`).
_Families = Generator[Metric | None, None, None]


def _capped(series: Mapping[str, Histogram], limit: int,
            other: str) -> Steps[list[tuple[str, Histogram]]]:  # fmt: skip
    """The ``limit`` busiest series as they are, the rest folded into one ``other`` (into
    the kept one, when a series is itself named ``other``: a label past
    :class:`LabelledHistograms`' bound is, and Prometheus refuses a scrape that repeats a
    series)."""
    items = list(series.items())  # the live mapping may grow while the loop runs
    if len(items) <= limit:
        return items
    counted: list[tuple[int, str, Histogram]] = []
    for start in range(0, len(items), _CHUNK):
        counted += [(each.count, value, each) for value, each in items[start:start + _CHUNK]]
        yield
    counted.sort(key=lambda item: -item[0])  # stable: equal counts keep their order
    kept = {value: each for _, value, each in counted[: limit - 1]}
    folded = kept[other] = kept[other].merged(Histogram()) if other in kept else Histogram()
    for start in range(limit - 1, len(counted), _CHUNK):
        for _, _, each in counted[start:start + _CHUNK]:
            folded.absorb(each)
        yield
    return list(kept.items())


def histogram_series(name: str, documentation: str, histogram: Histogram | None = None, *,
                     label: str = "", series: Mapping[str, Histogram] | None = None,
                     limit: int = 500, other: str = "other") -> _Families:  # fmt: skip
    """:func:`histogram_family` as steps (``None``), then the family."""
    metric = Metric(name, documentation, "histogram")
    if histogram is not None:
        _add_series(metric, name, {}, histogram)
    kept = yield from _capped(series or {}, limit, other)
    for n, (value, each) in enumerate(kept, 1):
        _add_series(metric, name, {label: value}, each)
        if n % _CHUNK == 0:
            yield None
    yield metric


def histogram_family(name: str, documentation: str, histogram: Histogram | None = None, *,
                     label: str = "", series: Mapping[str, Histogram] | None = None,
                     limit: int = 500, other: str = "other") -> Metric:  # fmt: skip
    """A ``histogram`` family: one unlabelled ``histogram``, or ``series`` by ``label``
    (at most ``limit`` of them, as every labelled kumocore metric is capped)."""
    stream = histogram_series(name, documentation, histogram, label=label, series=series,
                              limit=limit, other=other)  # fmt: skip
    (metric,) = [each for each in stream if each is not None]
    return metric


def multi_label_family(name: str, documentation: str, labels: tuple[str, ...],
                       series: Mapping[tuple[str, ...], Histogram]) -> Metric:
    """A ``histogram`` family whose series each carry several labels (``labels``, in the
    order of each key's values): for the few metrics KumoMTA labels so, already bounded
    where they are observed."""
    metric = Metric(name, documentation, "histogram")
    for values, histogram in series.items():
        _add_series(metric, name, dict(zip(labels, values, strict=True)), histogram)
    return metric


#: KumoMTA's ``user_lua_latency``, by the policy's own ``label``: what a policy times
#: (``kumo.time.start_timer``). One per process, like the policy's caches.
USER_LATENCY = LabelledHistograms()


def observe_user_latency(label: str, seconds: float) -> None:
    """Record ``seconds`` under a policy's timer ``label`` (``user_lua_latency``): the
    public entry for policy plugins."""
    USER_LATENCY.observe(label, seconds)
