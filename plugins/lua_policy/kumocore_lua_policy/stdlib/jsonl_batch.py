"""``LogBatch`` (what a ``kumo.jsonl`` tailer yields) and the checkpoint file it commits.

A checkpoint is KumoMTA's: a hidden file ``.<checkpoint_name>`` in the log directory
holding ``{"file": "<segment path>", "line": N}`` — the segment being read and how many of
its lines were consumed — replaced atomically (temporary file, then rename), so a tailer
that restarts resumes after the last committed batch, and KumoMTA and kumocore can take
over each other's checkpoints.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from kumocore import ConfigError


class Checkpoint:
    """Where a consumer stands: the segment file (a path string) and lines consumed."""

    __slots__ = ("file", "line")

    def __init__(self, file: str, line: int) -> None:
        self.file = file
        self.line = line

    @property
    def name(self) -> str:
        """The segment's file name: positions compare by name (names sort in time order)."""
        return os.path.basename(self.file)

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        try:
            data = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"kumo.jsonl: reading checkpoint {path}: {exc}") from None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("file"), str)
            or not isinstance(data.get("line"), int)
            or data["line"] < 0
        ):
            raise ConfigError(f'kumo.jsonl: checkpoint {path} is not {{"file": "...", "line": N}}')
        return cls(data["file"], data["line"])

    def save(self, path: Path) -> None:
        """Write ``path`` atomically: a reader sees the old checkpoint or the new one."""
        fd, tmp = tempfile.mkstemp(prefix=path.name, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(orjson.dumps({"file": self.file, "line": self.line}))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class LogBatch:
    """Records for one consumer, with the checkpoint that committing the batch writes."""

    lua_methods = True

    def __init__(
        self, consumer: str, records: list[Any], commit_to: Callable[[], None] | None
    ) -> None:
        self._consumer = consumer
        self._records: list[Any] | None = records
        self._commit_to = commit_to

    def __len__(self) -> int:
        return len(self._records or ())

    def consumer_name(self) -> str:
        """The consumer's name (``"default"`` for ``new_tailer``); "" once committed."""
        return self._consumer if self._records is not None else ""

    def records(self) -> list[Any]:
        """Every record, as a sequence; empty once committed."""
        return list(self._records or ())

    def iter_records(self) -> Callable[..., Any]:
        """An iterator function handing out one record per call, then nil."""
        records = iter(list(self._records or ()))

        def next_record(*_for_state: Any) -> Any:
            return next(records, None)

        return next_record

    async def commit(self) -> None:
        """Advance the checkpoint to the end of this batch (off the event loop: it fsyncs).
        A no-op without ``checkpoint_name``, and on a second call, as in KumoMTA."""
        commit_to, self._commit_to, self._records = self._commit_to, None, None
        if commit_to is not None:
            await asyncio.to_thread(commit_to)

    def __repr__(self) -> str:
        return f"LogBatch({self._consumer!r}, {len(self)} records)"
