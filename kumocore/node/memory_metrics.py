"""The ``/metrics`` families of memory limits and spool health, under KumoMTA's names.

KumoMTA's memory thread exports, once a soft limit is known, the gauges ``memory_usage``
(the bytes its decisions use: the cgroup working set, else the RSS), ``memory_limit``
(the soft limit) and ``memory_low_thresh``, and counts the transitions over the low
threshold (``memory_low_count``) and over the soft limit (``memory_over_limit_count``).
kumocore reports the same from :data:`kumocore.node.memory.MEMORY`'s last sample, so the
values are at most :data:`~kumocore.node.memory.CHECK_INTERVAL` seconds old, as
KumoMTA's are. (``memory_usage_rust``, the bytes KumoMTA's allocator counted, has no
equivalent: it is not exported.)

Spool health: KumoMTA's RocksDB spool exports ``rocks_spool_load_shed_active{path}``, 1
while the spool's gate is latched (writes refused, reception turned away). kumocore
reports it for every defined spool, 1 while its spools are unhealthy
(:mod:`kumocore.spool.health`), which latches for the data and meta spools together.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client.metrics_core import Metric

from kumocore.node.memory import MEMORY, MemoryState
from kumocore.spool.health import HOLD, DeliveryHold

__all__ = ["memory_metrics", "spool_health_metrics"]

_GAUGES = (
    ("memory_usage", "number of bytes of used memory that drives memory limit decisions "
     "(the cgroup working set when a cgroup limit applies, else the resident set size)"),
    ("memory_limit", "soft memory limit measured in bytes"),
    ("memory_low_thresh", "low memory threshold measured in bytes"),
)  # fmt: skip
_COUNTERS = (
    ("memory_low_count", "How many times the low memory threshold was exceeded."),
    ("memory_over_limit_count", "how many times the soft memory limit was exceeded"),
)
_LOAD_SHED_HELP = (
    "Set to 1 when this spool's load-shedding gate is latched (its writes fail; SMTP and "
    "HTTP injection are turned away), 0 otherwise."
)


def _one(name: str, kind: str, help_text: str, value: float) -> Metric:
    metric = Metric(name, help_text, kind)
    metric.add_sample(name, {}, value)
    return metric


def memory_metrics(state: MemoryState = MEMORY) -> Iterator[Metric]:
    """The memory families; the gauges only once a sample found a soft limit."""
    soft, usage, low = state.limits.soft, state.usage, state.low_in_force
    if usage is not None and soft is not None and low is not None:
        for (name, help_text), value in zip(_GAUGES, (usage, soft, low), strict=True):
            yield _one(name, "gauge", help_text, value)
    counts = (state.low_count, state.over_limit_count)
    for (name, help_text), count in zip(_COUNTERS, counts, strict=True):
        yield _one(name, "counter", help_text, count)


def spool_health_metrics(paths: Iterable[Path], hold: DeliveryHold = HOLD) -> Iterator[Metric]:
    """``rocks_spool_load_shed_active`` for each spool directory in ``paths``."""
    metric = Metric("rocks_spool_load_shed_active", _LOAD_SHED_HELP, "gauge")
    latched = 1 if hold.reason is not None else 0
    for path in paths:
        metric.add_sample("rocks_spool_load_shed_active", {"path": str(path)}, latched)
    if metric.samples:
        yield metric
