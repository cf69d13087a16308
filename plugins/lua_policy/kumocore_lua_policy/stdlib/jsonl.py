"""KumoMTA's ``kumo.jsonl``: ``new_tailer``, ``new_multi_tailer`` and ``new_writer``, with
their options read and checked here (names and defaults are KumoMTA's).

The tailer lives in :mod:`.jsonl_tailer`, a segment's decoding in :mod:`.jsonl_segment`,
batches and checkpoints in :mod:`.jsonl_batch`, the writer in :mod:`.jsonl_writer`.

A filter is called for each record on the event loop; a Lua filter gets the record as a
table (``stdlib.lua`` wraps it) and must not wait for I/O (no DNS or HTTP inside it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kumocore import ConfigError, lua_type_name
from kumocore_lua_policy.stdlib.jsonl_tailer import Consumer, Tailer
from kumocore_lua_policy.stdlib.jsonl_writer import LogWriter
from kumocore_lua_policy.stdlib.time_delta import parse_duration

_TAILER_KEYS = {
    "directory",
    "pattern",
    "max_batch_size",
    "max_batch_latency",
    "checkpoint_name",
    "poll_watcher",
    "tail",
}
_MULTI_KEYS = {"directory", "pattern", "poll_watcher", "tail", "consumers"}
_CONSUMER_KEYS = {"name", "max_batch_size", "max_batch_latency", "checkpoint_name", "filter"}
_WRITER_KEYS = {
    "log_dir",
    "max_file_size",
    "compression_level",
    "max_segment_duration",
    "suffix",
    "tz",
}


def _table(who: str, value: Any, known: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{who}: expected a table, got {lua_type_name(value)}")
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(
            f"{who}: unknown field(s) {', '.join(map(str, unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    return value


def _string(who: str, options: dict[str, Any], key: str, default: str | None) -> str | None:
    value = options.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{who}: {key} must be a string, got {lua_type_name(value)}")
    return value


def _required(who: str, options: dict[str, Any], key: str) -> str:
    value = _string(who, options, key, None)
    if not value:
        raise ConfigError(f"{who}: missing field `{key}`")
    return value


def _count(who: str, options: dict[str, Any], key: str, default: int, low: int = 1) -> int:
    value = options.get(key, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{who}: {key} must be an integer >= {low}, got {value!r}")
    return value


def _seconds(who: str, options: dict[str, Any], key: str, default: str | None) -> float | None:
    value = options.get(key, default)
    if value is None:
        return None
    try:
        nanos = parse_duration(value).nanoseconds
    except Exception as exc:
        raise ConfigError(f"{who}: {key}: not a duration: {value!r} ({exc})") from None
    if nanos is None or nanos < 0:
        raise ConfigError(f"{who}: {key}: not a usable duration: {value!r}")
    return nanos / 1e9


def _bool(who: str, options: dict[str, Any], key: str) -> bool:
    value = options.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{who}: {key} must be a boolean, got {lua_type_name(value)}")
    return value


def _filter(who: str, value: Any) -> Callable[[Any], Any] | None:
    if value is not None and not callable(value):
        raise ConfigError(f"{who}: the filter must be a function, got {lua_type_name(value)}")
    filter_fn: Callable[[Any], Any] | None = value
    return filter_fn


def _consumer(
    who: str, directory: str, options: dict[str, Any], name: str, filter_fn: Any
) -> Consumer:
    checkpoint = _string(who, options, "checkpoint_name", None)
    return Consumer(
        name=name,
        max_batch_size=_count(who, options, "max_batch_size", 100),
        max_batch_latency=_seconds(who, options, "max_batch_latency", "1s") or 0.0,
        checkpoint=Path(directory) / f".{checkpoint}" if checkpoint else None,
        filter_fn=_filter(who, filter_fn),
    )


def _directory(who: str, options: dict[str, Any]) -> str:
    directory = _required(who, options, "directory")
    if not Path(directory).is_dir():
        raise ConfigError(f"{who}: directory {directory} does not exist")
    return directory


def new_tailer(config: Any, filter_fn: Any = None) -> Tailer:
    """``kumo.jsonl.new_tailer({ directory, pattern, max_batch_size, max_batch_latency,
    checkpoint_name, poll_watcher, tail }, filter)``: a tailer of the log segments in
    ``directory`` (one consumer, named ``default``); ``tailer:batches()`` yields LogBatch
    objects (``:records()``, ``:iter_records()``, ``:consumer_name()``, ``:commit()``),
    ``tailer:close()`` stops it. Options: [Log files and queues between
    tasks](../lua-policy.md#log-files-and-queues-between-tasks)."""
    who = "kumo.jsonl.new_tailer"
    options = _table(who, config, _TAILER_KEYS)
    directory = _directory(who, options)
    consumer = _consumer(who, directory, options, "default", filter_fn)
    return Tailer(
        directory,
        _string(who, options, "pattern", "*") or "*",
        _seconds(who, options, "poll_watcher", None),
        _bool(who, options, "tail"),
        [consumer],
        single=True,
    )


def new_multi_tailer(config: Any) -> Tailer:
    """``kumo.jsonl.new_multi_tailer { directory, pattern, poll_watcher, tail, consumers =
    { { name, filter, max_batch_size, max_batch_latency, checkpoint_name }, ... } }``: one
    read of the segments fanned out to several consumers; ``tailer:batches()`` yields a
    sequence of the batches that are ready."""
    who = "kumo.jsonl.new_multi_tailer"
    options = _table(who, config, _MULTI_KEYS)
    directory = _directory(who, options)
    entries = options.get("consumers")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{who}: consumers must be a non-empty sequence of tables")
    consumers: list[Consumer] = []
    for index, entry in enumerate(entries, 1):
        where = f"{who}: consumers[{index}]"
        entry = _table(where, entry, _CONSUMER_KEYS)
        name = _required(where, entry, "name")
        if any(c.name == name for c in consumers):
            raise ConfigError(f"{where}: the consumer name {name!r} is used twice")
        consumers.append(_consumer(where, directory, entry, name, entry.get("filter")))
    return Tailer(
        directory,
        _string(who, options, "pattern", "*") or "*",
        _seconds(who, options, "poll_watcher", None),
        _bool(who, options, "tail"),
        consumers,
    )


def new_writer(config: Any) -> LogWriter:
    """``kumo.jsonl.new_writer { log_dir, max_file_size, compression_level,
    max_segment_duration, suffix, tz }``: a writer of zstd JSON-lines segments
    (``writer:write_record(v)``, ``writer:write_line(s)``, ``writer:close()``, which makes
    the segment read-only)."""
    who = "kumo.jsonl.new_writer"
    options = _table(who, config, _WRITER_KEYS)
    level = _count(who, options, "compression_level", 3, low=0)
    if level > 22:
        raise ConfigError(f"{who}: compression_level must be 0 (zstd's default) to 22, got {level}")
    tz_name = _string(who, options, "tz", None)
    try:
        tz = ZoneInfo(tz_name) if tz_name else None
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{who}: tz: unknown time zone {tz_name!r}") from None
    return LogWriter(
        log_dir=_required(who, options, "log_dir"),
        max_file_size=_count(who, options, "max_file_size", 128 * 1024 * 1024),
        compression_level=level,
        max_segment_duration=_seconds(who, options, "max_segment_duration", None),
        suffix=_string(who, options, "suffix", None),
        tz=tz,
    )


def jsonl_functions() -> dict[str, Callable[..., Any]]:
    return {
        "jsonl.new_tailer": new_tailer,
        "jsonl.new_multi_tailer": new_multi_tailer,
        "jsonl.new_writer": new_writer,
    }
