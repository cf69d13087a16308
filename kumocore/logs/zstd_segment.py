"""One zstd-compressed segment file being written: the one encoder of log segments, the
counterpart of :class:`kumocore.logs.zstd_lines.ZstdLines` (the one decoder).

Used by the HTTP accounting log (:mod:`kumocore.http.acl_acct`) and, through the public
API, by the local-logs plugin and the Lua plugin's ``kumo.jsonl.new_writer``. Each of them
keeps what is its own: how segments are named, when they roll, and whether a finished one
is marked done. What they share is here:

- the file is created exclusively (a name already taken raises :class:`FileExistsError`,
  never appends to another writer's segment) and private (0600: records carry addresses);
- one zstd frame per segment, written as a stream: a write hands the file whatever
  compressed output the encoder has ready, so memory stays bounded by one zstd block;
- :meth:`~ZstdSegmentWriter.flush` ends the current block, which makes everything written
  so far decodable by a reader of the open file (``ZstdLines``, or any zstd decoder fed
  the bytes so far); the frame stays open;
- :meth:`~ZstdSegmentWriter.close` ends the frame and closes the file, and
  :meth:`~ZstdSegmentWriter.mark_done` clears its write bits: the sign tailers (KumoMTA's
  and kumocore's) wait for before treating a segment as complete.

``zstandard`` is imported lazily: only a node that writes segments needs it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from kumocore.node.fsmode import create_private_file

__all__ = ["WRITE_BITS", "ZstdSegmentWriter"]

#: The permission bits :meth:`ZstdSegmentWriter.mark_done` removes.
WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


class ZstdSegmentWriter:
    """A new segment file at ``path`` holding one zstd frame at ``level`` (0 is zstd's
    default, 3; up to 22). ``written`` counts the uncompressed bytes, what a writer's
    ``max_file_size`` limits; ``flushed`` tells whether a block has reached the file."""

    def __init__(self, path: str | Path, level: int = 3) -> None:
        import zstandard

        self.path = Path(path)
        self.written = 0
        self.flushed = False
        self._closed = False
        self._flush_block = zstandard.FLUSH_BLOCK
        # One compressor per segment: a ZstdCompressor must not drive two streams at once.
        compressor = zstandard.ZstdCompressor(level=level)  # a bad level fails before the file
        self._raw = os.fdopen(create_private_file(self.path), "wb", buffering=0)
        try:
            self._writer = compressor.stream_writer(self._raw, closefd=False)
        except BaseException:
            self._raw.close()
            raise

    @property
    def closed(self) -> bool:
        return self._closed

    # write and flush are on the path of every log record: no checks of their own (the
    # zstd writer refuses a closed stream with ValueError).

    def write(self, data: bytes) -> None:
        """Compress ``data`` (whole lines, newline included, as the caller frames them)."""
        self._writer.write(data)
        self.written += len(data)

    def flush(self) -> None:
        """End the current zstd block: what was written so far reaches the file, decodable
        by a reader of the open segment. The frame stays open."""
        self._writer.flush(self._flush_block)
        self.flushed = True

    def close(self) -> None:
        """End the frame and close the file (idempotent). The file is closed even when
        ending the frame fails (a full disk): the descriptor is never leaked."""
        if self._closed:
            return
        self._closed = True
        try:
            # Ends the frame (closefd=False: the file is closed below); zstandard's stubs
            # leave close() untyped.
            self._writer.close()  # type: ignore[no-untyped-call]
        finally:
            self._raw.close()

    def mark_done(self) -> None:
        """Clear the file's write bits: the segment is complete and will not grow."""
        mode = stat.S_IMODE(self.path.stat().st_mode)
        self.path.chmod(mode & ~WRITE_BITS)
