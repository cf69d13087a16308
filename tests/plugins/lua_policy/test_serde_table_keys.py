"""``kumo.serde.json_encode`` of a table whose keys are not all strings.

KumoMTA's encoder (serde_json over mlua) writes a table that is not a sequence as a JSON
object and turns integer keys into strings (``{[2] = 'x'}`` -> ``{"2":"x"}``); kumocore
failed with a Python ``TypeError`` instead.
"""

from __future__ import annotations

from pathlib import Path

from .support import Recorder, load


async def test_json_encode_writes_integer_keys_of_a_sparse_table_as_strings(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local function try(f, ...) kumo.test.mark({ pcall(f, ...) }) end
        try(kumo.serde.json_encode, { [2] = 'x' })
        try(kumo.serde.json_encode, { [5] = 'y', [7] = 'z' })
        try(kumo.serde.json_encode_pretty, { [3] = true })
        try(kumo.json_encode, { [2] = 'x' })  -- the older top-level name
    """, recorder=recorder)
    assert recorder.marks[0] == [True, '{"2":"x"}']
    ok, text = recorder.marks[1]
    assert ok and sorted(text.strip("{}").split(",")) == ['"5":"y"', '"7":"z"']
    assert recorder.marks[2] == [True, '{\n  "3": true\n}']
    assert recorder.marks[3] == [True, '{"2":"x"}']


async def test_json_encode_of_sequences_and_string_keys_is_unchanged(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.test.mark(kumo.serde.json_encode { 1, 2, 3 })
        kumo.test.mark(kumo.serde.json_encode { a = { 'x' } })
    """, recorder=recorder)
    assert recorder.marks == ["[1,2,3]", '{"a":["x"]}']
