"""kumocore-lmdb-spool: the ``kind = 'LMDB'`` spool for kumocore, made for message bodies.

.. code-block:: lua

    kumo.define_spool { name = 'data', path = '/var/spool/kumo/lmdb', kind = 'LMDB' }
    kumo.define_spool { name = 'meta', path = '/var/spool/kumo/lmdb', kind = 'LMDB' }

Spools defined at one path share one environment, and a commit cycle writes them in one
transaction (:mod:`.environment`). Writes share the group commit of every other
group-commit spool of the loop (:mod:`kumocore.spool.commit`), so a body here and its
envelope in a RocksDB ``meta`` spool are still written in one cycle, the body synced
first. ``lmdb`` is imported only when a spool is opened.

Owns the LMDB spool kind. It does not own the spool contract or what is stored
(:mod:`kumocore.spool`). This kind is kumocore's own: KumoMTA has no ``LMDB`` kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kumocore import ConfigError, hookimpl
from kumocore.spool import SpoolFactory
from kumocore_lmdb_spool.environment import MAP_SIZE
from kumocore_lmdb_spool.spool import LmdbSpool

__all__ = ["MAP_SIZE", "LmdbSpool", "LmdbSpoolPlugin", "make_lmdb_spool"]


def make_lmdb_spool(
    *,
    name: str,
    path: str,
    flush: bool = False,
    rocks_params: Mapping[str, Any] | None = None,
    **kind_independent_options: Any,
) -> LmdbSpool:
    """The ``LMDB`` spool factory: ``kumo.define_spool`` fields as keyword arguments.

    Refuses what this kind cannot honour instead of ignoring it: ``flush = true`` (LMDB
    syncs with ``fdatasync``, which also writes the file's size when it grows) and any
    ``rocks_params``. ``min_free_space``/``min_free_inodes`` are the core's.
    """
    if flush:
        raise ConfigError(
            f"kumo.define_spool {name!r}: kind 'LMDB' does not take 'flush = true' "
            "(every commit is synced with fdatasync); leave it out or use kind 'RocksDB'")
    if rocks_params:
        raise ConfigError(
            f"kumo.define_spool {name!r}: 'rocks_params' is for kind 'RocksDB', not 'LMDB'")
    return LmdbSpool(name, path)


class LmdbSpoolPlugin:
    """Provides the ``LMDB`` spool kind."""

    @hookimpl(trylast=True)
    def kumo_register_spool_kinds(self) -> Mapping[str, SpoolFactory]:
        return {"LMDB": make_lmdb_spool}
