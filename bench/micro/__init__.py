"""Micro-benchmarks of one part at a time: ``python -m bench.micro.<name>``.

* :mod:`bench.micro.rocksdb_spool` — synced puts per second of the RocksDB spool with one
  and with many concurrent writers (group commit).
"""
