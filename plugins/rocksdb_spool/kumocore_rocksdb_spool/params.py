"""``rocks_params``: KumoMTA's RocksDB tuning table, applied to rocksdict ``Options``.

The keys and defaults are KumoMTA's (``crates/spool/src/rocks.rs``); a key KumoMTA knows
but rocksdict cannot set (``log_level``) is validated and then ignored, so a KumoMTA
policy loads unchanged. Anything else is refused naming the key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from kumocore import ConfigError
from kumocore.config import parse_duration

if TYPE_CHECKING:
    from rocksdict import Options

_WHERE = "kumo.define_spool: rocks_params"

# key -> (rocksdict Options method, kind of value)
_SETTERS: dict[str, tuple[str, str]] = {
    "increase_parallelism": ("increase_parallelism", "int"),
    "optimize_level_style_compaction": ("optimize_level_style_compaction", "int"),
    "optimize_universal_style_compaction": ("optimize_universal_style_compaction", "int"),
    "compaction_readahead_size": ("set_compaction_readahead_size", "int"),
    "max_open_files": ("set_max_open_files", "int"),
    "memtable_huge_page_size": ("set_memtable_huge_page_size", "int"),
    "paranoid_checks": ("set_paranoid_checks", "bool"),
    "level_compaction_dynamic_level_bytes": ("set_level_compaction_dynamic_level_bytes", "bool"),
    "compression_type": ("set_compression_type", "compression"),
    "log_file_time_to_roll": ("set_log_file_time_to_roll", "seconds"),
    "obsolete_files_period": ("set_delete_obsolete_files_period_micros", "micros"),
    "log_level": ("", "log_level"),
}

#: Every key ``rocks_params`` accepts.
ROCKS_PARAMS = frozenset(_SETTERS)

_COMPRESSION = ("None", "Snappy", "Zlib", "Bz2", "Lz4", "Lz4hc", "Zstd")
_LOG_LEVELS = ("Debug", "Info", "Warn", "Error", "Fatal", "Header")

#: Retired WAL files kept for reuse.
_RECYCLED_WALS = 4

# KumoMTA's defaults for the keys that have one.
_DEFAULTS: dict[str, Any] = {
    "compression_type": "Snappy",
    "log_file_time_to_roll": 86400,
    "obsolete_files_period": 6 * 3600,
}


def build_options(rocksdict: Any, *, flush: bool, params: Mapping[str, Any]) -> Options:
    """Raw-mode ``Options`` for a spool; ``flush`` selects fsync over fdatasync (as KumoMTA)."""
    unknown = sorted(set(params) - ROCKS_PARAMS)
    if unknown:
        raise ConfigError(
            f"{_WHERE}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(ROCKS_PARAMS))}"
        )
    opts: Options = rocksdict.Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.set_use_fsync(bool(flush))
    opts.set_keep_log_file_num(10)  # RocksDB keeps 1000 info logs by default
    # Reuse retired WAL files: a file that already has its size and blocks lets a sync
    # write the records alone, without the inode (docs/performance.md, eighth round).
    # Safe with point-in-time recovery, the default, since RocksDB's PR 12403 (2024);
    # tests/plugins/rocksdb_spool/test_kill9.py kills a writer on a reused WAL.
    opts.set_recycle_log_file_num(_RECYCLED_WALS)
    for key, value in {**_DEFAULTS, **params}.items():
        method, kind = _SETTERS[key]
        converted = _CONVERT[kind](rocksdict, key, value)
        if method:
            getattr(opts, method)(converted)
    return opts


def _int(_: Any, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{_WHERE}.{key}: expected a non-negative integer, got {value!r}")
    return value


def _bool(_: Any, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{_WHERE}.{key}: expected true or false, got {value!r}")
    return value


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{_WHERE}.{key}: expected one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _compression(rocksdict: Any, key: str, value: Any) -> Any:
    return getattr(rocksdict.DBCompressionType, _choice(key, value, _COMPRESSION).lower())()


def _seconds(_: Any, key: str, value: Any) -> int:
    return int(parse_duration(value, key=f"rocks_params.{key}"))


def _micros(_: Any, key: str, value: Any) -> int:
    return int(parse_duration(value, key=f"rocks_params.{key}") * 1_000_000)


def _log_level(_: Any, key: str, value: Any) -> str:
    return _choice(key, value, _LOG_LEVELS)


_CONVERT: dict[str, Callable[[Any, str, Any], Any]] = {
    "int": _int,
    "bool": _bool,
    "compression": _compression,
    "seconds": _seconds,
    "micros": _micros,
    "log_level": _log_level,
}
