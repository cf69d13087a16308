"""Segment files: zstd-compressed JSON lines, named by UTC open time, read-only when done.

Everything here is synchronous and runs on the sink's single worker thread, so one
:class:`SegmentSet` is never touched by two threads at once.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path

import structlog

from kumocore import ZstdSegmentWriter, private_dir
from kumocore_local_logs.options import LocalLogsConfig, MinFree
from kumocore_local_logs.workers import WorkerTag

log = structlog.get_logger("kumocore.local_logs")

#: (directory, suffix): records with the same key share a segment.
SegmentKey = tuple[Path, str]
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def segment_name(unix_ns: int, suffix: str = "", worker: WorkerTag | None = None) -> str:
    """``20250912-110801.440526026``: KumoMTA's ``%Y%m%d-%H%M%S%.f`` (UTC), fixed width so
    names sort in time order; a ``--workers`` worker adds ``.w<k>`` before the suffix."""
    secs, frac = divmod(unix_ns, 1_000_000_000)
    marker = worker.marker if worker is not None else ""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(secs)) + f".{frac:09d}{marker}{suffix}"


def mark_done(path: Path) -> None:
    """Remove every write bit: the signal to readers that the segment is complete."""
    mode = path.stat().st_mode
    path.chmod(stat.S_IMODE(mode) & ~_WRITE_BITS)


def mark_existing_done(directory: Path, worker: WorkerTag | None = None) -> int:
    """Mark segments left writable by a previous run (a crash) as done; KumoMTA does this
    at start-up so readers do not wait forever on a file nobody will finish. A worker
    leaves the segments other live workers are writing alone."""
    count = 0
    for entry in os.scandir(directory):
        if worker is not None and not worker.owns_leftover(entry.name):
            continue
        if (not entry.name.startswith(".") and entry.is_file(follow_symlinks=False)
                and entry.stat().st_mode & _WRITE_BITS):
            mark_done(Path(entry.path))
            count += 1
    return count


def below_min_free(directory: Path, space: MinFree, inodes: MinFree) -> bool:
    """True when the filesystem holding ``directory`` is under either floor."""
    st = os.statvfs(directory)
    checks = ((st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize, space),
              (st.f_favail, st.f_files, inodes))
    for free, total, floor in checks:
        if floor.amount is not None and free < floor.amount:
            return True
        if floor.percent is not None and total and free * 100 < total * floor.percent:
            return True
    return False


class Segment(ZstdSegmentWriter):
    """One open segment; its zstd frame stays open until :meth:`finish`. The file is
    created exclusively ("x": never append to, and corrupt, a segment written by someone
    else) and 0600 (the records carry addresses and headers). ``flush`` ends a block, which
    makes everything written so far decodable by a reader of the in-progress file;
    ``flushed`` then records that some batch made it to disk (its records confirmed)."""

    def __init__(self, path: Path, level: int, expires: float | None) -> None:
        super().__init__(path, level)
        self.expires = expires

    def finish(self) -> None:
        """End the frame, close the file, and mark it done (read-only)."""
        try:
            self.close()
        finally:
            mark_done(self.path)


class SegmentSet:
    """The open segments of one local-logs configuration, rotated by size and age."""

    def __init__(self, config: LocalLogsConfig) -> None:
        self.config = config
        self.level = config.compression_level or 3  # 0 means zstd's default level
        self.open: dict[SegmentKey, Segment] = {}
        self.prepared = False
        self.worker = WorkerTag.from_env()

    def prepare(self) -> None:
        """Create the directories and finish a previous run's segments (idempotent)."""
        if self.prepared:
            return
        for directory in self.config.all_dirs():
            private_dir(directory, "configure_local_logs: log_dir")  # 0700, ours only
            mark_existing_done(directory, self.worker)
        self.prepared = True

    def write(self, items: Iterable[tuple[SegmentKey, bytes]]) -> float | None:
        """Append JSON lines to their segments, flush them, and return the next expiry
        deadline (``time.monotonic()`` seconds) or None."""
        self.prepare()
        grouped: dict[SegmentKey, list[bytes]] = {}
        for key, line in items:
            grouped.setdefault(key, []).append(line)
        for key, lines in grouped.items():
            try:
                self._write_lines(key, lines)
            except BaseException:
                self._abandon(key)  # a half-written segment must not take more records
                raise
        return self.next_deadline()

    def _write_lines(self, key: SegmentKey, lines: list[bytes]) -> None:
        limit = self.config.max_file_size
        segment: Segment | None = None
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            if segment is None:
                segment, chunk = self._segment(key), []
                size = segment.written
            chunk.append(line)
            size += len(line)
            if size >= limit:  # rotate after the record that crossed the limit, as KumoMTA
                segment.write(b"".join(chunk))
                self._finish(key)
                segment = None
        if segment is not None:
            segment.write(b"".join(chunk))
            segment.flush()

    def _segment(self, key: SegmentKey) -> Segment:
        segment = self.open.get(key)
        expires = segment.expires if segment is not None else None
        if expires is not None and expires <= time.monotonic():
            self._finish(key)
            segment = None
        if segment is None:
            segment = self._open(key)
            self.open[key] = segment
        return segment

    def _open(self, key: SegmentKey) -> Segment:
        directory, suffix = key
        duration = self.config.max_segment_duration
        expires = time.monotonic() + duration if duration else None
        if below_min_free(directory, self.config.min_free_space, self.config.min_free_inodes):
            log.warning("log directory is below its free space floor", directory=str(directory))
        unix_ns = time.time_ns()
        for _ in range(1000):  # two segments opened within the same nanosecond
            try:
                name = segment_name(unix_ns, suffix, self.worker)
                return Segment(directory / name, self.level, expires)
            except FileExistsError:
                unix_ns += 1
        raise FileExistsError(f"cannot find a free segment name in {directory}")

    def _finish(self, key: SegmentKey) -> None:
        segment = self.open.pop(key, None)
        if segment is not None:
            segment.finish()

    def _abandon(self, key: SegmentKey) -> None:
        segment = self.open.get(key)
        try:
            self._finish(key)
        except Exception as exc:
            log.error("could not finish a failed log segment", error=repr(exc))
        if segment is not None and not segment.flushed:
            # Nothing in it was confirmed: only (part of) the batch that failed, which the
            # dispatcher writes again. Removing it keeps a full disk from gathering one
            # empty segment per retry, and the records from appearing twice.
            try:
                segment.path.unlink(missing_ok=True)
            except OSError as exc:
                log.error("could not remove a failed log segment", error=repr(exc))

    def next_deadline(self) -> float | None:
        deadlines = [s.expires for s in self.open.values() if s.expires is not None]
        return min(deadlines) if deadlines else None

    def expire(self) -> float | None:
        """Finish segments whose ``max_segment_duration`` has passed, even when idle."""
        now = time.monotonic()
        for key in [k for k, s in self.open.items() if s.expires is not None and s.expires <= now]:
            self._finish(key)
        return self.next_deadline()

    def close(self) -> None:
        errors = []
        for key in list(self.open):
            try:
                self._finish(key)
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
