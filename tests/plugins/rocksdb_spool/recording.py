"""Test helpers: a database wrapper that logs writes and syncs, a write that fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class RecordingDb:
    """Wraps a spool's real database and records the order of its writes and WAL syncs,
    each event prefixed with ``label`` (e.g. ``"data "``) when several spools share a log."""

    def __init__(self, db: Any, events: list[str], label: str = "") -> None:
        self.db = db
        self.events = events
        self.label = label

    def write(self, batch: Any, opts: Any) -> None:
        self.events.append(f"{self.label}write")
        self.db.write(batch, opts)

    def flush_wal(self, sync: bool) -> None:
        self.db.flush_wal(sync)
        self.events.append(f"{self.label}synced={sync}")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def failing_write(reason: str) -> Callable[[object, bool], None]:
    """A stand-in for a spool's ``_write`` that fails with ``OSError(reason)``."""

    def broken(ops: object, sync: bool) -> None:
        raise OSError(reason)

    return broken
