"""Lines out of a zstd stream, decoded a bounded step at a time: the one decoder of log
segments, used by kumocore's log reader (:mod:`kumocore.logs.reader`) and, through the
public API, by the Lua plugin's ``kumo.jsonl`` tailers.

Memory stays bounded whatever the stream holds (a crafted frame can expand 32,768-fold):
compressed input is decoded :data:`STEP` bytes at a time, so one call yields at most
``STEP * 32 KiB`` (4 MiB); the zstd window is capped at :data:`MAX_WINDOW`; and a line
longer than ``max_line`` is dropped as it streams past, never accumulated. ``zstandard``
is imported lazily: only log readers need it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

#: Compressed bytes decoded per call: zstd expands at most ~32,768-fold (RLE blocks), so
#: one call yields at most 4 MiB, however hostile the stream.
STEP = 128
#: The longest line (record) kept by default; longer ones are dropped.
MAX_LINE = 4 * 1024 * 1024
#: The largest zstd window accepted: what compression_level 21 (the highest the local
#: logs allow) uses. A frame asking for more is an error, not decoded.
MAX_WINDOW = 1 << 26


class ZstdLinesError(ValueError):
    """The bytes are not a zstd stream (foreign content or corruption)."""


class ZstdLines:
    """Incremental decoder: :meth:`feed` compressed bytes, take the lines they complete.

    A line longer than ``max_line`` comes out as ``None`` where it ends (so that callers
    counting lines count it); ``on_long`` is called as soon as it passes the bound."""

    def __init__(
        self, max_line: int = MAX_LINE, on_long: Callable[[], None] | None = None
    ) -> None:
        import zstandard

        self.max_line = max_line
        self._on_long = on_long or (lambda: None)
        self._error = zstandard.ZstdError
        self._new = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW).decompressobj
        self._zstd = self._new()
        self._partial = bytearray()
        self._skipping = False  # inside an over-long line: drop bytes until its end

    @property
    def has_partial(self) -> bool:
        """Bytes of an unfinished line are pending (a writer stopped mid-record)."""
        return bool(self._partial) or self._skipping

    def feed(self, compressed: bytes) -> Iterator[bytes | None]:
        """The lines ``compressed`` completes, without their newline; raises
        :class:`ZstdLinesError` when it is not zstd."""
        for start in range(0, len(compressed), STEP):
            yield from self._lines(self._decompress(compressed[start : start + STEP]))

    def finish(self) -> bytes | None:
        """The trailing unterminated line (None when there is none or it was dropped);
        the decoder then starts a new line."""
        tail = bytes(self._partial) if self._partial and not self._skipping else None
        self._partial.clear()
        self._skipping = False
        return tail

    def _lines(self, data: bytes) -> Iterator[bytes | None]:
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            piece, start = data[start:end], end + 1
            if self._skipping or len(self._partial) + len(piece) > self.max_line:
                if not self._skipping:
                    self._on_long()
                self._skipping = False
                self._partial.clear()
                yield None
                continue
            line = bytes(self._partial + piece) if self._partial else piece
            self._partial.clear()
            yield line
        rest = data[start:]
        if self._skipping or not rest:
            return
        if len(self._partial) + len(rest) > self.max_line:
            self._on_long()
            self._partial.clear()
            self._skipping = True  # drop the rest of this line as it arrives
        else:
            self._partial += rest

    def _decompress(self, data: bytes) -> bytes:
        out = []
        try:
            while data:
                out.append(self._zstd.decompress(data))
                if not self._zstd.eof:
                    break
                data = self._zstd.unused_data  # a stream may hold several frames
                self._zstd = self._new()
        except self._error as exc:
            raise ZstdLinesError(str(exc)) from None
        return b"".join(out)
