"""A log sink that keeps every record in memory, for tests to read and wait on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from kumocore.logs.record import LogRecord


class RecordingLogSink:
    """Keeps every :class:`LogRecord` the dispatcher hands it, in order."""

    name = "kumocore.testing"

    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        self._arrived = asyncio.Event()

    async def write_batch(self, records: Sequence[LogRecord]) -> None:
        self.records.extend(records)
        self._arrived.set()

    async def close(self) -> None:
        return None

    def parsed(self, *types: str, **fields: Any) -> list[dict[str, Any]]:
        """The records as KumoMTA JSON objects (every meta key included), optionally only
        those of the given ``types`` whose top-level fields equal ``fields``."""
        out = []
        for record in self.records:
            if types and record.type.value not in types:
                continue
            parsed = record.to_json(meta_keys=tuple(record.meta))
            if all(parsed.get(key) == value for key, value in fields.items()):
                out.append(parsed)
        return out

    async def wait_for(
        self, *types: str, count: int = 1, timeout: float = 10.0, **fields: Any
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` records match (see :meth:`parsed`); fail loudly
        with what did arrive otherwise."""
        deadline = time.monotonic() + timeout
        while len(found := self.parsed(*types, **fields)) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(r.type.value, r.recipient) for r in self.records]
                raise AssertionError(
                    f"expected {count} {'/'.join(types) or 'log'} record(s) matching {fields}, "
                    f"got {len(found)}; records so far: {seen}"
                )
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(remaining, 0.25))
            except TimeoutError:
                pass
        return found
