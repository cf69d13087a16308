"""``kumo.jsonl.new_writer``: write JSON lines into zstd segment files that KumoMTA's and
kumocore's tailers and ``kumocore logs`` read.

A segment is named by its open time (``YYYYMMDD-HHMMSS.nnnnnnnnn`` plus the ``suffix``, in
``tz`` or UTC), so names sort in time order. It rolls after ``max_file_size`` uncompressed
bytes or ``max_segment_duration``; a finished segment has its write bits cleared, the mark
a tailer waits for. Writes are synchronous, as in KumoMTA, and bounded: a line goes into
kumocore's segment encoder (:class:`kumocore.ZstdSegmentWriter`), which hands the file at
most one compressed block per write.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from kumocore import ConfigError, ZstdSegmentWriter, string_argument


class LogWriter:
    """One ``new_writer``: at most one segment open at a time."""

    lua_methods = True

    def __init__(
        self,
        log_dir: str,
        max_file_size: int,
        compression_level: int,
        max_segment_duration: float | None,
        suffix: str | None,
        tz: ZoneInfo | None,
    ) -> None:
        self._dir = Path(log_dir)
        self._max_size = max_file_size
        self._max_age = max_segment_duration
        self._suffix = suffix or ""
        self._tz = tz
        self._level = compression_level
        self._segment: ZstdSegmentWriter | None = None
        self._opened = 0.0

    def write_line(self, line: str) -> None:
        """Write ``line`` as one record (a newline is added unless it ends with one)."""
        string_argument("write_line", "line", line)
        if self._segment is None:
            self._segment = self._open()
        data = line.encode() if line.endswith("\n") else (line + "\n").encode()
        self._segment.write(data)
        if self._segment.written >= self._max_size or self._too_old():
            self.close()

    def write_record(self, value: Any) -> None:
        """Write ``value`` encoded as JSON."""
        try:
            text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError as exc:
            raise ConfigError(f"write_record: cannot encode the value as JSON: {exc}") from None
        self.write_line(text)

    def close(self) -> None:
        """Finish the current segment (if any) and mark it done (read-only)."""
        segment, self._segment = self._segment, None
        if segment is None:
            return
        segment.close()
        segment.mark_done()  # only once its frame is whole: a tailer then reads it all

    def __del__(self) -> None:
        # KumoMTA finishes the segment when the writer is dropped; so do we, best effort.
        try:
            self.close()
        except Exception:
            pass

    def _too_old(self) -> bool:
        return self._max_age is not None and time.monotonic() - self._opened >= self._max_age

    def _open(self) -> ZstdSegmentWriter:
        self._dir.mkdir(parents=True, exist_ok=True)
        while True:
            path = self._dir / (self._stamp() + self._suffix)
            try:
                segment = ZstdSegmentWriter(path, self._level)
                break
            except FileExistsError:  # two segments in one nanosecond: take the next
                continue
        self._opened = time.monotonic()
        return segment

    def _stamp(self) -> str:
        ns = time.time_ns()
        moment = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
        if self._tz is not None:
            moment = moment.astimezone(self._tz)
        return f"{moment:%Y%m%d-%H%M%S}.{ns % 1_000_000_000:09d}"
