"""KumoMTA's ``rocks_spool_*`` gauges of one RocksDB spool, read from RocksDB properties.

KumoMTA's spool samples these every 5 seconds into its metrics; here they are read
when ``/metrics`` is scraped (the core's :class:`kumocore.spool.StoreStats`), which
costs about 5 us for all ten: RocksDB answers them from in-memory counters, from any
thread. The names, and the property behind each, are KumoMTA's (``crates/spool/src/
rocks.rs``); a property RocksDB does not answer reads 0, as there.

The three mem-table gauges are what RocksDB's ``MemoryUtil`` (KumoMTA's source for them)
adds up over a database's column families; a spool has only the default one.
``rocks_spool_cache_total`` is the one that differs: KumoMTA asks ``MemoryUtil`` about
no cache, so it always reports 0; this spool reports what the name says, the bytes
held by the database's block cache (``rocksdb.block-cache-usage``).
``rocks_spool_load_shed_active`` is the core's (:mod:`kumocore.node.memory_metrics`).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rocksdict import Rdict

__all__ = ["PROPERTIES", "read_stats"]

#: KumoMTA's gauge name -> the RocksDB integer property it reports.
PROPERTIES = MappingProxyType({
    "rocks_spool_mem_table_total": "rocksdb.size-all-mem-tables",
    "rocks_spool_mem_table_unflushed": "rocksdb.cur-size-all-mem-tables",
    "rocks_spool_mem_table_readers_total": "rocksdb.estimate-table-readers-mem",
    "rocks_spool_cache_total": "rocksdb.block-cache-usage",
    "rocks_spool_compaction_pending": "rocksdb.compaction-pending",
    "rocks_spool_estimate_pending_compaction_bytes": "rocksdb.estimate-pending-compaction-bytes",
    "rocks_spool_num_running_compactions": "rocksdb.num-running-compactions",
    "rocks_spool_background_errors": "rocksdb.background-errors",
    "rocks_spool_write_stopped": "rocksdb.is-write-stopped",
    "rocks_spool_actual_delayed_write_rate": "rocksdb.actual-delayed-write-rate",
})


def read_stats(db: Rdict) -> dict[str, int]:
    """Every gauge of ``db`` now; empty when the database cannot answer (closed)."""
    try:
        return {name: db.property_int_value(prop) or 0 for name, prop in PROPERTIES.items()}
    except Exception:  # rocksdict's DbClosedError, or a borrow conflict while it closes
        return {}
