"""``kumo.string.wrap`` breaks lines as KumoMTA's kumo-wrap does: widths are counted in
UTF-8 bytes (not characters), only ASCII whitespace separates words (a no-break space is
part of its word), and the separating space is not counted against the soft limit."""

from __future__ import annotations

from pathlib import Path

from .support import Recorder, load


async def _wrapped(tmp_path: Path, calls: list[str]) -> list[str]:
    recorder = Recorder()
    body = "\n".join(f"kumo.test.mark(kumo.string.wrap({call}))" for call in calls)
    await load(tmp_path, f"local kumo = require 'kumo'\n{body}\n", recorder=recorder)
    return list(recorder.marks)


async def test_widths_are_counted_in_utf8_bytes(tmp_path: Path) -> None:
    # Each 'ü' is two bytes: six of them (12 bytes, over the soft limit) cut at 6 bytes
    # make two lines of three characters. 'grün' and 'weiß' are 5 bytes each: 10 is not
    # under a soft limit of 10, although the 9 characters of 'grün weiß' would be.
    got = await _wrapped(tmp_path, ["string.rep('ü', 6), 4, 6", "'grün weiß', 10, 50"])
    assert got == ["üüü\r\n\tüüü", "grün\r\n\tweiß"]


async def test_only_ascii_whitespace_separates_words(tmp_path: Path) -> None:
    got = await _wrapped(tmp_path, ["'one\\u{a0}two three', 9, 50", "'x\\ty\\nz', 2, 50"])
    assert got == ["one\u00a0two\r\n\tthree", "x\r\n\ty\r\n\tz"]


async def test_soft_limit_ignores_the_separating_space(tmp_path: Path) -> None:
    # 'ab' + 'cd' is 4 bytes, under 5, so they share a line although 'ab cd' is 5 long.
    got = await _wrapped(tmp_path, ["'ab cd ef', 5, 50", "string.rep('k', 8) .. ' m', 3, 4"])
    assert got == ["ab cd\r\n\tef", "kkkk\r\n\tkkkk\r\n\tm"]
