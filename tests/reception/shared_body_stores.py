"""The stores the shared-body kill -9 test runs against (child and parent alike)."""

from __future__ import annotations

from kumocore.spool.localdisk import LocalDiskSpool
from kumocore.spool.store import MessageStore

BODY = b"Subject: shared\r\n\r\n" + b"z" * 20_000 + b"\r\n"
RECIPIENTS = 4


def open_store(kind: str, path: str) -> MessageStore:
    if kind == "localdisk":
        return MessageStore(LocalDiskSpool("data", f"{path}/data"),
                            LocalDiskSpool("meta", f"{path}/meta"))
    from kumocore_rocksdb_spool import RocksDBSpool

    if kind == "lmdb":  # LMDB bodies, RocksDB envelopes
        from kumocore_lmdb_spool import LmdbSpool

        return MessageStore(LmdbSpool("data", f"{path}/data"), RocksDBSpool("meta", f"{path}/meta"))
    return MessageStore(RocksDBSpool("data", f"{path}/data"), RocksDBSpool("meta", f"{path}/meta"))
