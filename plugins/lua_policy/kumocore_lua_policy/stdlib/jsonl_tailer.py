"""The ``kumo.jsonl`` tailer: reads a directory of log segments in name (= time) order, once,
and hands each consumer batches of the records its filter keeps.

Segments are read by :class:`~.jsonl_segment.SegmentReader` in a worker thread, a bounded
number of lines per step; filters run on the loop (a Lua filter must run where Lua runs).
A batch is ready when it holds ``max_batch_size`` records or ``max_batch_latency`` has
passed since its first record; when every segment has been read, partial batches are
handed out at once. A segment is finished when its write bits are clear (the writer's
mark); until then the tailer waits for it to grow, polling every ``poll_watcher`` (0.2 s
by default) — kumocore polls instead of using inotify, so ``poll_watcher`` only sets the
interval. The stream never ends on its own: it waits for new segments until closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kumocore_lua_policy.stdlib.jsonl_batch import Checkpoint, LogBatch
from kumocore_lua_policy.stdlib.jsonl_segment import Record, SegmentError, SegmentReader, is_done

#: Lines read per step at most (each at most MAX_LINE bytes).
READ_LINES = 1024
DEFAULT_POLL = 0.2
_log = logging.getLogger("kumocore.jsonl")


class Consumer:
    """One consumer's settings and its batch being filled."""

    def __init__(
        self,
        name: str,
        max_batch_size: int,
        max_batch_latency: float,
        checkpoint: Path | None,
        filter_fn: Callable[[Any], Any] | None,
    ) -> None:
        self.name = name
        self.max_batch_size = max_batch_size
        self.latency = max_batch_latency
        self.checkpoint = checkpoint
        self.filter = filter_fn
        self.start: Checkpoint | None = None
        self.batch: list[Any] = []
        self.deadline: float | None = None

    def ready(self, now: float, flush: bool) -> bool:
        return bool(self.batch) and (
            flush
            or len(self.batch) >= self.max_batch_size
            or (self.deadline is not None and now >= self.deadline)
        )

    def wants(self, name: str, index: int) -> bool:
        """The record is past this consumer's checkpoint."""
        start = self.start
        return start is None or (name, index) >= (start.name, start.line)


class Tailer:
    """A multi-consumer tailer (``new_tailer`` is one consumer named ``default``)."""

    lua_methods = True

    def __init__(
        self,
        directory: str,
        pattern: str,
        poll: float | None,
        tail: bool,
        consumers: list[Consumer],
        single: bool = False,
    ) -> None:
        self._dir_text = directory
        self._dir = Path(directory)
        self._pattern = pattern
        self._poll = DEFAULT_POLL if poll is None else poll
        self._tail = tail
        self._consumers = consumers
        self._single = single
        self._closed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._started = False
        self._reader: SegmentReader | None = None
        self._pending: deque[Record] = deque()
        self._last_done: str | None = None  # name of the last segment read to its end
        self._bad: set[str] = set()
        self._position: tuple[str, int] | None = None  # (segment path, lines consumed)

    # ------------------------------------------------------------------ Lua-facing
    def batches(self) -> Callable[..., Any]:
        """The iterator function for ``for batch in tailer:batches() do``."""

        async def next_batch(*_for_state: Any) -> Any:
            ready = await self.next_ready()
            if ready is None or not self._single:
                return ready
            return ready[0]

        next_batch.__name__ = "tailer:batches()"  # how errors from it are named
        return next_batch

    def close(self) -> None:
        """Stop: a pending or later poll returns nil. Writes no checkpoint."""
        self._closed.set()
        if not self._lock.locked():  # else the pending poll closes the file when it ends
            self._drop_reader()

    # ------------------------------------------------------------------ the stream
    async def next_ready(self) -> list[LogBatch] | None:
        async with self._lock:
            try:
                return await self._next_ready()
            finally:
                if self._closed.is_set():
                    self._drop_reader()

    async def _next_ready(self) -> list[LogBatch] | None:
        if not self._started:
            await asyncio.to_thread(self._load_checkpoints)
            self._started = True
        while not self._closed.is_set():
            if ready := self._take_ready(flush=False):
                return ready
            if self._pending:
                await self._distribute()
                continue
            if self._reader is None and not await self._open_next():
                if ready := self._take_ready(flush=True):  # everything read: flush all
                    return ready
                await self._wait(self._poll)
                continue
            await self._read_step()
        return None

    async def _read_step(self) -> None:
        reader = self._reader
        assert reader is not None
        want = max(
            1, min(READ_LINES, max(c.max_batch_size - len(c.batch) for c in self._consumers))
        )
        try:
            done, records, at_end = await asyncio.to_thread(_read, reader, want)
        except SegmentError as exc:
            self._log_bad(str(exc), reader)
            return
        self._pending.extend(records)
        if reader.bad_json:
            self._bad.add(self._name(reader.path))
            self._drop_reader()
        elif at_end and done:
            if reader.has_partial:
                _log.warning(
                    "unexpected EOF for %s with partial line data remaining; discarding it",
                    reader.path,
                )
            self._finish_segment(reader)
        elif at_end and not records:
            await self._wait(self._until_deadline())

    def _finish_segment(self, reader: SegmentReader) -> None:
        path = self._path_text(reader.path)
        self._pending.append((-1, (path, reader.lines)))  # the end marker: see _distribute
        self._last_done = self._name(reader.path)
        self._reader = None
        reader.close()

    async def _distribute(self) -> None:
        """Hand pending records to consumers until one batch is ready (or none are left)."""
        now = time.monotonic()
        while self._pending and not self._take_ready_check(now):
            index, value = self._pending.popleft()
            if index < 0:  # a finished segment: its end is the position now
                self._position = value
                continue
            assert self._position is not None  # set when the segment was opened
            path = self._position[0]
            name = self._name(Path(path))
            for consumer in self._consumers:
                if consumer.wants(name, index) and await _keep(consumer.filter, value):
                    consumer.batch.append(value)
                    if consumer.deadline is None:
                        consumer.deadline = time.monotonic() + consumer.latency
            self._position = (path, index + 1)

    def _take_ready_check(self, now: float) -> bool:
        return any(c.ready(now, flush=False) for c in self._consumers)

    def _take_ready(self, flush: bool) -> list[LogBatch] | None:
        now = time.monotonic()
        ready: list[LogBatch] = []
        for consumer in self._consumers:
            if not consumer.ready(now, flush and not self._pending):
                continue
            ready.append(LogBatch(consumer.name, consumer.batch, self._committer(consumer)))
            consumer.batch, consumer.deadline = [], None
        return ready or None

    def _committer(self, consumer: Consumer) -> Callable[[], None] | None:
        if consumer.checkpoint is None or self._position is None:
            return None
        checkpoint, path = Checkpoint(*self._position), consumer.checkpoint
        return lambda: checkpoint.save(path)

    # ------------------------------------------------------------------ segments
    def _load_checkpoints(self) -> None:
        if self._tail:
            plan = self._plan()
            start = Checkpoint(self._path_text(plan[-1]), 0) if plan else None
            for consumer in self._consumers:
                consumer.start = start
            return
        for consumer in self._consumers:
            if consumer.checkpoint is not None:
                consumer.start = Checkpoint.load(consumer.checkpoint)

    def _plan(self) -> list[Path]:
        found = []
        for path in self._dir.glob(self._pattern):
            name = self._name(path)
            if path.name.startswith(".") or name in self._bad or not path.is_file():
                continue
            found.append((name, path))
        found.sort()
        if self._last_done is not None:
            return [p for name, p in found if name > self._last_done]
        starts = [c.start.name if c.start else "" for c in self._consumers]
        earliest = min(starts) if starts else ""
        return [p for name, p in found if name >= earliest]

    async def _open_next(self) -> bool:
        plan = await asyncio.to_thread(self._plan)
        if not plan:
            return False
        path = plan[0]
        name = self._name(path)
        skip = min(
            (c.start.line if c.start and c.start.name == name else 0) for c in self._consumers
        )
        self._reader = SegmentReader(path, skip_before=skip)
        self._position = (self._path_text(path), skip)
        return True

    def _log_bad(self, message: str, reader: SegmentReader) -> None:
        _log.warning(
            "%s. Skipping this file; move it aside if it is not a kumo-jsonl segment.", message
        )
        self._bad.add(self._name(reader.path))
        self._drop_reader()

    def _drop_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _name(self, path: Path) -> str:
        with contextlib.suppress(ValueError):
            return path.relative_to(self._dir).as_posix()
        return path.name

    def _path_text(self, path: Path) -> str:
        return os.path.join(self._dir_text, self._name(path))

    def _until_deadline(self) -> float:
        deadlines = [c.deadline for c in self._consumers if c.batch and c.deadline]
        if not deadlines:
            return self._poll
        return max(0.0, min(self._poll, min(deadlines) - time.monotonic()))

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._closed.wait()


def _read(reader: SegmentReader, want: int) -> tuple[bool, list[Record], bool]:
    # Done is read before the data: a segment seen done is complete when read to its end.
    done = is_done(reader.path)
    records, at_end = reader.read(want)
    return done, records, at_end


async def _keep(filter_fn: Callable[[Any], Any] | None, record: Any) -> bool:
    if filter_fn is None:
        return True
    result = filter_fn(record)
    if inspect.isawaitable(result):
        result = await result
    return bool(result)
