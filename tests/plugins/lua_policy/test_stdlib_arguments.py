"""Missing or mistyped arguments of ``kumo.serde.*`` and ``kumo.time.*`` are refused with one
line naming the function and the argument (KumoMTA's mlua refuses nil where it wants a
string or a number), not with a Python ``TypeError``/``AttributeError``; numbers and
numeric strings are coerced as mlua coerces them."""

from __future__ import annotations

from pathlib import Path

from .support import Recorder, load


async def test_nil_arguments_are_refused_naming_the_argument(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        local function err(f, ...) kumo.test.mark(tostring(select(2, pcall(f, ...)))) end
        err(kumo.serde.json_parse, nil)
        err(kumo.serde.json_load, nil)
        err(kumo.serde.toml_parse, {})
        err(kumo.serde.toml_load, nil)
        err(kumo.serde.yaml_parse, true)
        err(kumo.serde.yaml_load, nil)
        err(kumo.time.parse_rfc3339, nil)
        err(kumo.time.parse_rfc2822, {})
        err(kumo.time.from_unix_timestamp, nil)
        err(kumo.time.from_unix_timestamp, 'soon')
    """, recorder=recorder)
    expected = [
        "kumo.serde.json_parse: TEXT must be a string or a number, got nil",
        "kumo.serde.json_load: PATH must be a string or a number, got nil",
        "kumo.serde.toml_parse: TEXT must be a string or a number, got table",
        "kumo.serde.toml_load: PATH must be a string or a number, got nil",
        "kumo.serde.yaml_parse: TEXT must be a string or a number, got boolean",
        "kumo.serde.yaml_load: PATH must be a string or a number, got nil",
        "kumo.time.parse_rfc3339: TEXT must be a string or a number, got nil",
        "kumo.time.parse_rfc2822: TEXT must be a string or a number, got table",
        "kumo.time.from_unix_timestamp: SECONDS must be a number, got nil",
        "kumo.time.from_unix_timestamp: SECONDS must be a number, got string",
    ]
    for got, want in zip(recorder.marks, expected, strict=True):
        assert want in got
        assert "Error:" not in got and "NoneType" not in got


async def test_numbers_and_numeric_strings_are_coerced(tmp_path: Path) -> None:
    recorder = Recorder()
    await load(tmp_path, """\
        local kumo = require 'kumo'
        kumo.test.mark(kumo.serde.json_parse(42))
        kumo.test.mark(kumo.time.from_unix_timestamp('60').rfc3339)
        kumo.test.mark(kumo.time.from_unix_timestamp(1.5).unix_timestamp_millis)
    """, recorder=recorder)
    assert recorder.marks == [42, "1970-01-01T00:01:00+00:00", 1500]
