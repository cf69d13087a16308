"""``ZstdLines.finish()``: the trailing unterminated line, or None when there is none."""

from __future__ import annotations

import zstandard

from kumocore import ZstdLines


def frame(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def test_finish_returns_none_when_every_line_was_ended() -> None:
    lines = ZstdLines()
    assert list(lines.feed(frame(b"a\nb\n"))) == [b"a", b"b"]
    assert lines.finish() is None
    assert ZstdLines().finish() is None  # nothing fed at all


def test_finish_returns_the_unterminated_tail_once() -> None:
    lines = ZstdLines()
    assert list(lines.feed(frame(b"a\npartial"))) == [b"a"]
    assert lines.has_partial
    assert lines.finish() == b"partial"
    assert not lines.has_partial and lines.finish() is None


def test_finish_returns_none_for_a_tail_dropped_as_too_long() -> None:
    lines = ZstdLines(max_line=4)
    assert list(lines.feed(frame(b"ok\n" + b"x" * 10))) == [b"ok"]
    assert lines.finish() is None
    assert list(lines.feed(frame(b"next\n"))) == [b"next"]  # a new line starts cleanly
