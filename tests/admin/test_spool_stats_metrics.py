"""The core's side of ``StoreStats``: any spool kind's gauges reach ``/metrics``, labelled
with the spool's directory, through the wrapper the server puts around every spool; a
kind that breaks the contract costs its own gauges, never the scrape."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from prometheus_client.metrics_core import Metric

from kumocore.config.spool import MinFree
from kumocore.node.spool_stats import spool_stats_metrics
from kumocore.spool import MemorySpool, StoreStats
from kumocore.spool.recovering import RecoveringSpool
from kumocore.spool.storage_guard import MonitoredPath


class ThirdPartySpool(MemorySpool):
    """A kind from another plugin that reports its own gauges."""

    def __init__(self, name: str, stats: Mapping[str, object]) -> None:
        super().__init__(name)
        self.stats = stats

    def store_stats(self) -> Mapping[str, float]:
        return self.stats  # type: ignore[return-value]  # a sloppy plugin, on purpose


class BrokenSpool(MemorySpool):
    def store_stats(self) -> Mapping[str, float]:
        raise RuntimeError("the store went away")


def _paths(*names: str) -> list[MonitoredPath]:
    return [MonitoredPath(n, Path("/spool") / n, MinFree(percent=10), MinFree(percent=10))
            for n in names]  # fmt: skip


def _values(metrics: list[Metric]) -> dict[str, dict[str, float]]:
    return {m.name: {s.labels["path"]: s.value for s in m.samples} for m in metrics}


def test_any_kinds_gauges_are_read_through_the_reopening_wrapper_and_labelled() -> None:
    data = RecoveringSpool(lambda: ThirdPartySpool("data", {"acme_spool_pages": 7}))
    assert isinstance(data.inner, StoreStats)
    metrics = list(spool_stats_metrics([data, MemorySpool("meta")], _paths("data", "meta")))
    assert _values(metrics) == {"acme_spool_pages": {"/spool/data": 7}}
    assert metrics[0].type == "gauge"


def test_a_failing_kind_and_bad_names_or_values_are_left_out_of_the_scrape() -> None:
    data = ThirdPartySpool("data", {"ok_gauge": 1.5, "bad name": 1, "not_a_number": "x"})
    metrics = list(spool_stats_metrics([data, BrokenSpool("meta")], _paths("data", "meta")))
    assert _values(metrics) == {"ok_gauge": {"/spool/data": 1.5}}


def test_a_spool_without_a_defined_directory_and_a_shared_directory_are_reported_once() -> None:
    one, two = ThirdPartySpool("data", {"g": 1}), ThirdPartySpool("meta", {"g": 2})
    shared = [MonitoredPath(n, Path("/spool/shared"), MinFree(percent=10), MinFree(percent=10))
              for n in ("data", "meta")]  # fmt: skip
    assert _values(list(spool_stats_metrics([one, two], shared))) == {
        "g": {"/spool/shared": 1}}
    assert list(spool_stats_metrics([one], _paths("meta"))) == []  # the memory fallback
