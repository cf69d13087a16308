"""Arguments of ``kumo.string.*`` as KumoMTA's mlua reads them: a number is taken as the
string Lua's ``tostring`` gives, and nil or a table is refused naming the argument (not a
Python ``AttributeError`` about ``NoneType``)."""

from __future__ import annotations

from pathlib import Path

from .support import Recorder, load


async def test_numbers_are_taken_as_their_lua_strings(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local s = kumo.string
        kumo.test.mark(s.split(12345, 3))
        kumo.test.mark(s.replace(1.5, '.', ','))
        kumo.test.mark(s.trim(2.0))
        kumo.test.mark(s.starts_with(42, 4))
        kumo.test.mark(s.splitn(1e100, 2, 'e'))
        kumo.test.mark(s.wrap(7))
    """, recorder=recorder)
    assert recorder.marks == [["12", "45"], "1,5", "2.0", True, ["1", "+100"], "7"]


async def test_nil_and_tables_are_refused_naming_the_argument(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local s = kumo.string
        local function err(f, ...) kumo.test.mark(tostring(select(2, pcall(f, ...)))) end
        err(s.split, nil, ',')
        err(s.split, 'a,b', nil)
        err(s.trim, {})
        err(s.replacen, 'aaa', 'a', true, 1)
        err(s.ends_with, nil, 'x')
        err(s.split_ascii_whitespace, nil)
    """, recorder=recorder)
    expected = [
        "kumo.string.split: TEXT must be a string or a number, got nil",
        "kumo.string.split: PATTERN must be a string or a number, got nil",
        "kumo.string.trim: TEXT must be a string or a number, got table",
        "kumo.string.replacen: TO must be a string or a number, got boolean",
        "kumo.string.ends_with: TEXT must be a string or a number, got nil",
        "kumo.string.split_ascii_whitespace: TEXT must be a string or a number, got nil",
    ]
    for got, want in zip(recorder.marks, expected, strict=True):
        assert want in got
        assert "Error" not in got.replace(want, "")
