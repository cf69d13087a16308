"""``/metrics`` lines for traffic shaping automation.

``kumocore_tsa_action_expires_timestamp_seconds`` and ``..._since_timestamp_seconds`` carry
one sample per active action (labels: ``id``, ``kind``, ``rule``, ``path``, ``option``), so
a dashboard shows which rule acts on which path, since and until when.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

if TYPE_CHECKING:
    from kumocore.tsa.engine import TsaEngine

_LABELS = ["id", "kind", "rule", "path", "option"]


def tsa_metrics(engine: TsaEngine | None) -> Iterator[Metric]:
    if engine is None:
        return
    since = GaugeMetricFamily(
        "kumocore_tsa_action_since_timestamp_seconds",
        "When an active automation action was first recorded (unix time)", labels=_LABELS)
    until = GaugeMetricFamily(
        "kumocore_tsa_action_expires_timestamp_seconds",
        "When an active automation action ends (unix time)", labels=_LABELS)
    for action in engine.actions.values():
        option = f"{action.name}={action.value}" if action.name else ""
        labels = [action.id, action.kind, action.rule, action.site, option]
        since.add_metric(labels, action.since)
        until.add_metric(labels, action.expires)
    yield since
    yield until
    counts = CounterMetricFamily(
        "kumocore_tsa_records", "Records considered by automation, by outcome",
        labels=["outcome"])
    for key, value in engine.counters.items():
        counts.add_metric([key], value)
    yield counts
