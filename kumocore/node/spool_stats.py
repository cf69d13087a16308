"""The spools' own gauges for ``/metrics``, labelled ``path``: KumoMTA's
``rocks_spool_*`` for a RocksDB spool (``rocks_spool_mem_table_total``...).

The core does not know how a store works; a spool kind that has such gauges implements
:class:`kumocore.spool.StoreStats` and its ``store_stats()`` is read here at each scrape,
as any third-party kind's would be. Each value is labelled ``path`` with the directory
the spool was opened at (its ``kumo.define_spool`` path; a worker's shard directory with
``serve --workers N``), as KumoMTA labels them and as ``rocks_spool_load_shed_active``
is labelled, so the two join. A spool without the capability (LMDB, LocalDisk, memory)
adds nothing, and a spool whose ``store_stats()`` fails is left out of that scrape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

import structlog
from prometheus_client.metrics_core import Metric

from kumocore.spool.base import Spool, StoreStats
from kumocore.spool.recovering import configured_kind

if TYPE_CHECKING:
    from kumocore.spool.storage_guard import MonitoredPath

__all__ = ["spool_stats_metrics"]

log = structlog.get_logger("kumocore.node.spool_stats")

#: Help texts of the names KumoMTA's RocksDB spool reports; other names get a generic one.
_HELP = {
    "rocks_spool_mem_table_total": "approximate bytes of memory held by all the mem-tables",
    "rocks_spool_mem_table_unflushed": "approximate bytes of memory held by the mem-tables "
    "not flushed yet",
    "rocks_spool_mem_table_readers_total": "approximate bytes of memory held by the table "
    "readers (indexes and filters of open SST files)",
    "rocks_spool_cache_total": "approximate bytes of memory held by the block cache",
    "rocks_spool_compaction_pending": "1 while at least one compaction is pending, else 0",
    "rocks_spool_estimate_pending_compaction_bytes": "estimated bytes compaction still has "
    "to rewrite to bring every level back under its target size",
    "rocks_spool_num_running_compactions": "compactions running now",
    "rocks_spool_background_errors": "background errors (failed flushes or compactions) "
    "since the store was opened",
    "rocks_spool_write_stopped": "1 while RocksDB refuses writes until flushes or "
    "compactions catch up, else 0",
    "rocks_spool_actual_delayed_write_rate": "bytes per second RocksDB slows writers down "
    "to; 0 when it does not",
}
_GENERIC_HELP = "a gauge the spool kind reports"
_VALID_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _capability(spool: Spool) -> StoreStats | None:
    """The spool's stats, looked up in the spool of its configured kind."""
    store = configured_kind(spool)
    return store if isinstance(store, StoreStats) else None


def _read(spool: Spool) -> Mapping[str, float]:
    stats = _capability(spool)
    if stats is None:
        return {}
    try:
        return stats.store_stats()
    except Exception as exc:  # the contract says it does not raise; a scrape must not fail
        log.warning("spool stats failed", spool=spool.name, error=repr(exc))
        return {}


def spool_stats_metrics(spools: Iterable[Spool],
                        paths: Iterable[MonitoredPath]) -> Iterator[Metric]:  # fmt: skip
    """The gauges of every spool in ``spools`` that reports some, labelled with its
    directory from ``paths`` (matched by spool name; a spool without one is skipped)."""
    directories = {p.name: str(p.path) for p in paths}
    families: dict[str, Metric] = {}
    for spool in spools:
        directory = directories.get(spool.name)
        if directory is None:
            continue  # not a defined spool (the in-memory fallback)
        for name, value in _read(spool).items():
            if not _VALID_NAME.fullmatch(name) or not isinstance(value, int | float):
                continue  # would break the exposition: a plugin's mistake, not ours
            family = families.get(name)
            if family is None:
                family = families[name] = Metric(name, _HELP.get(name, _GENERIC_HELP), "gauge")
            if any(s.labels["path"] == directory for s in family.samples):
                continue  # two spools in one directory (one store): reported once
            family.add_sample(name, {"path": directory}, value)
    yield from families.values()
