"""Options every log sink's configuration shares (``configure_local_logs`` and
``configure_log_hook``): the ``meta``/``headers`` name lists and the ``per_record`` table.

Each check raises :class:`~kumocore.errors.ConfigError` naming the function and the key, as
KumoMTA's ``deny_unknown_fields`` does; what an entry of ``per_record`` may hold is the
caller's (``known``), what it means is the caller's too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from kumocore.errors import ConfigError
from kumocore.logs.record import RecordType


def names(value: Any, fn: str, key: str) -> tuple[str, ...]:
    """A list of non-empty names (``meta = {...}``, ``headers = {...}``)."""
    if isinstance(value, Mapping):  # a Lua array may arrive as {1: .., 2: ..}
        value = [value[k] for k in sorted(value)]
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{fn}: {key}: expected a list of names, got {value!r}")
    if not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{fn}: {key}: every entry must be a non-empty string")
    return tuple(value)


def per_record_entries(
    value: Any, fn: str, known: frozenset[str]
) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """``(record type, where, entry)`` for each entry of ``per_record = { Type = {...} }``,
    once the type is a record type and the entry a table of ``known`` keys only; ``where``
    (``per_record.Type``) is for the caller's own errors."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{fn}: per_record: expected a table, got {value!r}")
    for kind, entry in value.items():
        where = f"per_record.{kind}"
        if kind not in RecordType.__members__:
            raise ConfigError(f"{fn}: {where}: unknown record type {kind!r}; use one of "
                              + ", ".join(RecordType.__members__))  # fmt: skip
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{fn}: {where}: expected a table, got {entry!r}")
        for unknown in sorted(set(entry) - known):
            raise ConfigError(f"{fn}: {where}.{unknown}: unknown option "
                              f"(known: {', '.join(sorted(known))})")  # fmt: skip
        yield kind, where, entry
