"""kumo.string.split and its variants split as Rust's ``str::split`` family, as KumoMTA's do.

An empty pattern matches before every character and at the end (``'abc'`` splits into
``'', 'a', 'b', 'c', ''``); ``rsplit`` matches from the end.
"""

from __future__ import annotations

from pathlib import Path

from .support import Recorder, load, make_runtime


async def test_split_on_an_empty_pattern_splits_around_every_character(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local s = kumo.string
        kumo.test.mark(s.split('abc', ''))
        kumo.test.mark(s.split('', ''))
        kumo.test.mark(s.rsplit('abc', ''))
        kumo.test.mark(s.splitn('abc', 3, ''))
        kumo.test.mark(s.rsplitn('abc', 3, ''))
        kumo.test.mark(s.splitn('abc', 9, ''))
    """, recorder=recorder)
    assert recorder.marks == [
        ["", "a", "b", "c", ""], ["", ""], ["", "c", "b", "a", ""], ["", "a", "bc"],
        ["", "c", "ab"], ["", "a", "b", "c", ""],
    ]


async def test_rsplit_matches_overlapping_separators_from_the_end(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.test.mark(kumo.string.rsplit('aaa', 'aa'))
        kumo.test.mark(kumo.string.split('aaa', 'aa'))
    """, recorder=recorder)
    assert recorder.marks == [["", "a"], ["", "a"]]


def test_python_split_on_an_empty_pattern_matches_lua() -> None:
    assert make_runtime().kumo.string.split("abc", "") == ["", "a", "b", "c", ""]
