"""KumoMTA's free-space gauges for ``/metrics``: ``disk_free_bytes``,
``disk_free_percent``, ``disk_free_inodes`` and ``disk_free_inodes_percent``, labelled
``name`` (``data spool``, ``meta spool``, as KumoMTA names its monitored locations).

They are read with ``statvfs`` at each scrape for every spool the storage monitor watches
(:mod:`kumocore.spool.storage_guard`, which refuses mail below a spool's
``min_free_space``/``min_free_inodes``), so a dashboard sees the margin before that
happens. As KumoMTA computes them: the bytes and inodes available to an unprivileged
process, and each as a whole percentage of the file system's total, rounded down. A
location that cannot be read is left out of that scrape. (KumoMTA also watches its log
directory; kumocore's log sinks are plugins, so their directories are not listed.)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client.metrics_core import Metric

__all__ = ["disk_free_metrics"]

_HELP = {
    "disk_free_bytes": "number of available bytes in a monitored location",
    "disk_free_percent": "percentage of available bytes in a monitored location",
    "disk_free_inodes": "number of available inodes in a monitored location",
    "disk_free_inodes_percent": "percentage of available inodes in a monitored location",
}


def _percent(available: int, total: int) -> int:
    return available * 100 // total if total else 0


def disk_free_metrics(locations: Iterable[tuple[str, Path]]) -> Iterator[Metric]:
    """The four gauges for ``(name, path)`` pairs (a spool is named ``<name> spool``)."""
    metrics = {name: Metric(name, text, "gauge") for name, text in _HELP.items()}
    for name, path in locations:
        try:
            info = os.statvfs(path)
        except OSError:
            continue  # gone or unreadable: the storage monitor logs and acts on it
        labels = {"name": f"{name} spool"}
        values = {
            "disk_free_bytes": info.f_bavail * info.f_frsize,
            "disk_free_percent": _percent(info.f_bavail, info.f_blocks),
            "disk_free_inodes": info.f_favail,
            "disk_free_inodes_percent": _percent(info.f_favail, info.f_files),
        }
        for metric_name, value in values.items():
            metrics[metric_name].add_sample(metric_name, labels, value)
    for metric in metrics.values():
        if metric.samples:
            yield metric
