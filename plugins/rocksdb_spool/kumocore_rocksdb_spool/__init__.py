"""kumocore-rocksdb-spool: KumoMTA's ``kind = 'RocksDB'`` spool for kumocore.

.. code-block:: lua

    kumo.define_spool { name = 'data', path = '/var/spool/kumo/data', kind = 'RocksDB' }

Concurrent ``put`` calls are group-committed: one WriteBatch and one WAL sync per batch.
``rocksdict`` is imported only when a spool is opened, so loading the plugin is cheap.

Owns the RocksDB spool kind and its tuning. It does not own the spool contract or what is
stored (:mod:`kumocore.spool`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kumocore import hookimpl
from kumocore.spool import SpoolFactory
from kumocore_rocksdb_spool.params import ROCKS_PARAMS
from kumocore_rocksdb_spool.spool import RocksDBSpool

__all__ = ["ROCKS_PARAMS", "RocksDBSpool", "RocksDBSpoolPlugin", "make_rocksdb_spool"]


def make_rocksdb_spool(
    *,
    name: str,
    path: str,
    flush: bool = False,
    rocks_params: Mapping[str, Any] | None = None,
    **ignored_kumomta_options: Any,
) -> RocksDBSpool:
    """The ``RocksDB`` spool factory: ``kumo.define_spool`` fields as keyword arguments.

    ``min_free_space``/``min_free_inodes`` and other kind-independent options are watched
    by the core and ignored here. Raises :class:`kumocore.ConfigError` naming the path
    when the database cannot be opened, or the key of a bad ``rocks_params`` entry.
    """
    return RocksDBSpool(name, path, flush=flush, rocks_params=rocks_params)


class RocksDBSpoolPlugin:
    """Provides the ``RocksDB`` spool kind."""

    @hookimpl(trylast=True)
    def kumo_register_spool_kinds(self) -> Mapping[str, SpoolFactory]:
        return {"RocksDB": make_rocksdb_spool}
