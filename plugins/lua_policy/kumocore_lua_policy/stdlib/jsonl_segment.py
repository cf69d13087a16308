"""Reading one KumoMTA-format log segment (a zstd stream of JSON lines) a few lines at a
time, for ``kumo.jsonl`` tailers.

Runs in a worker thread (the tailer calls :meth:`SegmentReader.read` through
``asyncio.to_thread``), so decompression and JSON parsing never hold the event loop. The
file stays open between calls: a segment still being written grows, and the next call
picks up where the last one stopped.

Memory is bounded whatever the file holds: compressed input goes to kumocore's segment
decoder (:class:`kumocore.ZstdLines`: a capped zstd window) :data:`STEP` bytes at a time
(zstd expands at most ~32,768-fold, so one step yields at most 4 MiB), one call returns at
most ``count`` lines, and a line longer than :data:`MAX_LINE` is dropped as it streams
past (never accumulated) and reported. Lines are
counted as KumoMTA counts them — every newline-terminated line, blank or dropped ones too
— because checkpoints name a position as (file, line number).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO, Any

import orjson

from kumocore import ZstdLines, ZstdLinesError

log = logging.getLogger("kumocore.jsonl")

_CHUNK = 64 * 1024
#: Compressed bytes decoded per zstd call (bounds one call's output to ~4 MiB).
STEP = 128
#: The longest record kept; a longer line is skipped (its line number still counts).
MAX_LINE = 4 * 1024 * 1024
#: A record: (its 0-based line number in the segment, the parsed JSON value).
Record = tuple[int, Any]


class SegmentError(Exception):
    """The file is not a readable zstd segment (foreign content or corruption)."""


class SegmentReader:
    """Incremental reader of one segment; not thread-safe (one tailer thread at a time)."""

    def __init__(self, path: Path, skip_before: int = 0, max_line: int = MAX_LINE) -> None:
        self.path = path
        #: Lines seen so far (the checkpoint position once they are all handed out).
        self.lines = 0
        self.skip_before = skip_before
        self.max_line = max_line
        self._decoder = ZstdLines(max_line, self._report_long)
        self._file: IO[bytes] | None = None
        self._chunk, self._pos = b"", 0  # compressed bytes read, not yet decoded
        self._ready: list[Record] = []
        #: A line that was not JSON: KumoMTA gives up on the rest of such a file.
        self.bad_json = False

    def read(self, count: int) -> tuple[list[Record], bool]:
        """Up to ``count`` new records, and whether the file's current end was reached."""
        if self._file is None:
            try:
                self._file = self.path.open("rb")
            except OSError as exc:
                raise SegmentError(f"opening {self.path} for read: {exc}") from None
        while len(self._ready) < count and not self.bad_json:
            if self._pos >= len(self._chunk):
                self._chunk, self._pos = self._file.read(_CHUNK), 0
                if not self._chunk:
                    return self._take(count), True
            step = self._chunk[self._pos : self._pos + STEP]
            self._pos += STEP
            try:
                for line in self._decoder.feed(step):
                    self._end_line(line)
            except ZstdLinesError as exc:
                raise SegmentError(f"Error decompressing {self.path}: {exc}") from None
        return self._take(count), self.bad_json

    @property
    def has_partial(self) -> bool:
        """Bytes of an unfinished line are buffered (a writer stopped mid-record)."""
        return self._decoder.has_partial

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _take(self, count: int) -> list[Record]:
        taken, self._ready = self._ready[:count], self._ready[count:]
        return taken

    def _end_line(self, line: bytes | None) -> None:
        index = self.lines
        self.lines += 1
        if line is None or index < self.skip_before or self.bad_json:
            return
        try:
            self._ready.append((index, orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            log.warning(
                "Failed to parse line %d of %s as json: %s. Skipping the rest of "
                "this file; move it aside if it is not a kumo-jsonl segment.",
                index,
                self.path,
                exc,
            )
            self.bad_json = True

    def _report_long(self) -> None:
        log.warning(
            "%s: skipped line %d, longer than %d bytes", self.path, self.lines, self.max_line
        )


def is_done(path: Path) -> bool:
    """The writer finished ``path``: no write bit is left (KumoMTA's and kumocore's mark)."""
    try:
        return not path.stat().st_mode & 0o222
    except OSError:
        return False
