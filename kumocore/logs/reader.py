"""Reading local log segments: decode, filter, and follow a log directory as it grows.

A segment is a zstd stream of JSON lines named by its UTC open time, so names sort in time
order. A segment whose write bits are all clear is finished; a writable one is still being
written, and is readable up to the writer's last flush. Segments hold up to ~1 GB of JSON,
so everything here streams in small chunks. ``zstandard`` is imported lazily: only the
local-logs plugin and these readers need it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import stat
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from kumocore.logs.zstd_lines import MAX_LINE, ZstdLines, ZstdLinesError

_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
_CHUNK = 64 * 1024  # compressed bytes read from the file at once
#: (the line as written, the decoded record)
Line = tuple[bytes, dict[str, Any]]


def is_done(path: str | Path) -> bool:
    """True when the writer has finished ``path`` (no write bit left). Checks the mode bits,
    not ``os.access``: root may write anything, yet must still see the signal."""
    return not Path(path).stat().st_mode & _WRITE_BITS


def segment_paths(directory: str | Path) -> list[Path]:
    """Segments in ``directory``, oldest first (dot files and subdirectories skipped)."""
    root = Path(directory)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.is_file())


class SegmentError(Exception):
    """A file in a log directory that is not a readable zstd segment."""


class SegmentDecoder:
    """Decodes one segment incrementally: each :meth:`read_new` yields the complete lines
    that appeared since the previous call.

    Memory stays bounded whatever the file holds (:class:`~kumocore.logs.zstd_lines.ZstdLines`:
    bounded decoding steps, a capped zstd window); a line longer than :data:`MAX_LINE` is
    skipped (reported through ``on_problem``), never accumulated.
    """

    def __init__(self, path: Path,
                 on_problem: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.offset = 0
        self._on_problem = on_problem or _stderr
        self.skipped_lines = 0
        self._lines = ZstdLines(MAX_LINE, self._skip_line)

    def read_new(self, *, final: bool = False) -> Iterator[bytes]:
        """New complete lines; with ``final`` (segment done) a trailing partial line too.

        Raises :class:`SegmentError` when the file is not zstd (or is corrupt)."""
        with self.path.open("rb") as f:
            f.seek(self.offset)
            while chunk := f.read(_CHUNK):
                self.offset += len(chunk)
                try:
                    yield from (line for line in self._lines.feed(chunk)
                                if line is not None and line.strip())  # fmt: skip
                except ZstdLinesError as exc:
                    raise SegmentError(
                        f"{self.path}: not a readable zstd log segment ({exc})") from None
        if final and (tail := self._lines.finish()) is not None and tail.strip():
            yield tail

    def _skip_line(self) -> None:
        self.skipped_lines += 1
        self._on_problem(f"{self.path}: skipped a line longer than {MAX_LINE} bytes")


def _stderr(text: str) -> None:
    print(f"kumocore logs: {text}", file=sys.stderr)


def _decode(lines: Iterable[bytes], types: Collection[str] | None,
            queue: str | None) -> Iterator[Line]:
    for line in lines:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a line torn by a crash; the rest of the segment is still good
        if (isinstance(record, dict) and (not types or record.get("type") in types)
                and (queue is None or record.get("queue") == queue)):
            yield line, record


def iter_lines(
    path_or_dir: str | Path, types: Collection[str] | None = None, queue: str | None = None,
    on_problem: Callable[[str], None] | None = None,
) -> Iterator[Line]:
    """Every matching (line, record) in a segment, or in every segment of a directory,
    finished or in progress, oldest first. A file that is not a segment, and an over-long
    line, are reported through ``on_problem`` (stderr by default) and skipped."""
    path = Path(path_or_dir)
    if not path.exists():
        raise FileNotFoundError(f"no such log file or directory: {path}")
    report = on_problem or _stderr
    for segment in segment_paths(path) if path.is_dir() else [path]:
        try:
            yield from _decode(SegmentDecoder(segment, report).read_new(final=True),
                               types, queue)
        except SegmentError as exc:
            report(str(exc))


def iter_records(
    path_or_dir: str | Path, types: Collection[str] | None = None, queue: str | None = None,
    on_problem: Callable[[str], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every record (filtered by ``type`` and exact ``queue``) in a segment or directory."""
    for _, record in iter_lines(path_or_dir, types, queue, on_problem):
        yield record


class Follower:
    """Remembers how far each segment of a directory has been read.

    Several segments may be in progress at once (``per_record`` suffixes), so every
    unfinished segment is polled; a segment is forgotten once it is done and read to its end.
    """

    def __init__(self, directory: str | Path, types: Collection[str] | None = None,
                 queue: str | None = None) -> None:
        self.directory = Path(directory)
        self.types, self.queue = types, queue
        self._decoders: dict[str, SegmentDecoder] = {}
        self._finished: set[str] = set()

    def iter_new(self) -> Iterator[Line]:
        """Everything that became readable since the previous call."""
        for path in segment_paths(self.directory):
            if path.name in self._finished:
                continue
            decoder = self._decoders.setdefault(path.name, SegmentDecoder(path))
            try:
                done = is_done(path)  # before reading: a done file is complete when read
                yield from _decode(decoder.read_new(final=done), self.types, self.queue)
            except FileNotFoundError:  # removed by log retention since we listed it
                self._decoders.pop(path.name, None)
                continue
            except SegmentError as exc:  # a stray file: said once, then left alone
                _stderr(str(exc))
                self._finished.add(path.name)
                self._decoders.pop(path.name, None)
                continue
            if done:
                self._finished.add(path.name)
                del self._decoders[path.name]

    def poll(self) -> list[Line]:
        return list(self.iter_new())


async def follow(
    directory: str | Path, types: Collection[str] | None = None, queue: str | None = None,
    *, poll_interval: float = 0.25, stop: asyncio.Event | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Yield every record already in ``directory``, then new ones as they are flushed and
    as new segments appear, until ``stop`` is set (or forever)."""
    follower = Follower(directory, types, queue)
    while True:
        pending = follower.iter_new()
        # Decode in a thread, a thousand records at a time, so a large backlog neither
        # blocks the event loop nor sits in memory whole.
        while batch := await asyncio.to_thread(_take, pending, 1000):
            for _, record in batch:
                yield record
        if await _stopped(stop, poll_interval):
            return


def _take(items: Iterator[Line], count: int) -> list[Line]:
    return list(itertools.islice(items, count))


async def _stopped(stop: asyncio.Event | None, delay: float) -> bool:
    if stop is None:
        await asyncio.sleep(delay)
        return False
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay):
            await stop.wait()
    return stop.is_set()


def cat(directory: str | Path, types: Collection[str] | None, queue: str | None,
        out: IO[str]) -> int:
    """Print every matching record as a JSON line; return how many were printed."""
    return _write(iter_lines(directory, types, queue), out)


async def tail(
    directory: str | Path, types: Collection[str] | None, queue: str | None, out: IO[str],
    follow: bool = True, *, lines: int | None = None, poll_interval: float = 0.25,
    stop: asyncio.Event | None = None,
) -> int:
    """Print the last ``lines`` matching records (all when None), then, with ``follow``,
    every new one until ``stop`` is set. Returns how many were printed."""
    follower = Follower(directory, types, queue)

    def backlog() -> int:
        items: Iterable[Line] = follower.iter_new()
        if lines is not None:
            items = deque(items, maxlen=max(lines, 0))
        return _write(items, out)

    count = await asyncio.to_thread(backlog)
    while follow and not await _stopped(stop, poll_interval):
        count += await asyncio.to_thread(_write, follower.iter_new(), out)
    return count


def _write(items: Iterable[Line], out: IO[str]) -> int:
    count = 0
    for line, _ in items:
        out.write(line.decode() + "\n")
        count += 1
    if count:
        out.flush()
    return count
