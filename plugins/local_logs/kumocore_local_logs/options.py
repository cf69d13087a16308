"""``kumo.configure_local_logs { ... }``: KumoMTA's options, validated into a config.

Every mistake raises :class:`kumocore.ConfigError` naming the offending key, the way
KumoMTA's ``deny_unknown_fields`` does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kumocore import ConfigError
from kumocore.config.duration import parse_duration
from kumocore.logs import names, per_record_entries

_FN = "configure_local_logs"
_KEYS = frozenset({
    "log_dir", "max_file_size", "max_segment_duration", "compression_level", "back_pressure",
    "headers", "meta", "per_record", "filter_event", "min_free_space", "min_free_inodes",
})
_PER_RECORD_KEYS = frozenset({"suffix", "log_dir", "enable"})
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True, slots=True)
class PerRecord:
    """Where one record type goes: its own directory and/or file-name suffix, or nowhere."""

    suffix: str = ""
    log_dir: Path | None = None
    enable: bool = True


@dataclass(frozen=True, slots=True)
class MinFree:
    """A free-space floor: a percentage of the filesystem, or an absolute amount."""

    percent: float | None = 10.0
    amount: int | None = None


@dataclass(frozen=True, slots=True)
class LocalLogsConfig:
    log_dir: Path
    max_file_size: int = 1_000_000_000
    max_segment_duration: float | None = None
    compression_level: int = 0
    back_pressure: int = 128_000
    headers: tuple[str, ...] = ()
    meta: tuple[str, ...] = ()
    per_record: Mapping[str, PerRecord] = field(default_factory=dict)
    filter_event: str | None = None
    min_free_space: MinFree = MinFree()
    min_free_inodes: MinFree = MinFree()

    def route(self, record_type: str) -> PerRecord | None:
        """The ``per_record`` entry for a type, falling back to ``Any`` (as KumoMTA does)."""
        return self.per_record.get(record_type) or self.per_record.get("Any")

    def all_dirs(self) -> list[Path]:
        dirs = [self.log_dir]
        dirs += [pr.log_dir for pr in self.per_record.values() if pr.log_dir is not None]
        return list(dict.fromkeys(dirs))


def _duration(value: Any, key: str) -> float:
    seconds = parse_duration(value, key=key)  # '5 minutes', '30s', '1h', or seconds
    if seconds <= 0:
        raise ConfigError(f"{_FN}: {key}: duration must be positive, got {value!r}")
    return seconds


def _int(value: Any, key: str, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{_FN}: {key}: expected an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise ConfigError(f"{_FN}: {key}: must be {bounds}, got {value}")
    return value


def _min_free(value: Any, key: str) -> MinFree:
    if isinstance(value, str) and (match := _PERCENT.match(value)):
        percent = float(match[1])
        if percent > 100:
            raise ConfigError(f"{_FN}: {key}: percentage above 100: {value!r}")
        return MinFree(percent=percent)
    return MinFree(percent=None, amount=_int(value, key, low=0))


def _per_record(value: Any) -> dict[str, PerRecord]:
    out: dict[str, PerRecord] = {}
    for kind, where, entry in per_record_entries(value, _FN, _PER_RECORD_KEYS):
        suffix, enable = entry.get("suffix") or "", entry.get("enable", True)
        if not isinstance(suffix, str) or "/" in suffix:
            raise ConfigError(f"{_FN}: {where}.suffix: expected a file-name suffix string")
        if not isinstance(enable, bool):
            raise ConfigError(f"{_FN}: {where}.enable: expected true or false")
        log_dir = entry.get("log_dir")
        if log_dir is not None and not isinstance(log_dir, (str, Path)):
            raise ConfigError(f"{_FN}: {where}.log_dir: expected a path string")
        out[kind] = PerRecord(suffix, Path(log_dir) if log_dir else None, enable)
    return out


def parse_options(options: Mapping[str, Any]) -> LocalLogsConfig:
    """Validate ``configure_local_logs`` options (defaults as in KumoMTA)."""
    for unknown in sorted(set(options) - _KEYS):
        raise ConfigError(f"{_FN}: unknown option {unknown!r} "
                          f"(known: {', '.join(sorted(_KEYS))})")
    log_dir = options.get("log_dir")
    if not isinstance(log_dir, (str, Path)) or not str(log_dir):
        raise ConfigError(f"{_FN}: log_dir is required (a directory path)")
    kwargs: dict[str, Any] = {"log_dir": Path(log_dir)}
    if "max_file_size" in options:
        kwargs["max_file_size"] = _int(options["max_file_size"], "max_file_size", low=1)
    if options.get("max_segment_duration") is not None:
        kwargs["max_segment_duration"] = _duration(
            options["max_segment_duration"], "max_segment_duration")
    if "compression_level" in options:
        kwargs["compression_level"] = _int(
            options["compression_level"], "compression_level", low=0, high=21)
    if "back_pressure" in options:
        kwargs["back_pressure"] = _int(options["back_pressure"], "back_pressure", low=1)
    for key in ("headers", "meta"):
        if key in options:
            kwargs[key] = names(options[key], _FN, key)
    if "per_record" in options:
        kwargs["per_record"] = _per_record(options["per_record"])
    if options.get("filter_event") is not None:
        if not isinstance(options["filter_event"], str) or not options["filter_event"]:
            raise ConfigError(f"{_FN}: filter_event: expected an event name")
        # Asked by the log dispatcher, on the event loop (kumocore.logs.filter_event).
        kwargs["filter_event"] = options["filter_event"]
    for key in ("min_free_space", "min_free_inodes"):
        if key in options:
            kwargs[key] = _min_free(options[key], key)
    return LocalLogsConfig(**kwargs)
