"""kumo.jsonl.new_writer: zstd JSON-lines segments named by open time, rolled on size and
age, read-only once finished — readable by kumocore's log reader and kumo.jsonl tailers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kumocore import PolicyError
from kumocore.logs.reader import is_done, iter_records

from .support import Recorder, load

NAME = re.compile(r"^(\d{8}-\d{6})\.\d{9}(\.zst)?$")


async def run(tmp_path: Path, source: str) -> list[Any]:
    recorder = Recorder()
    await load(tmp_path, source, recorder=recorder)
    return recorder.marks


def segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if not p.name.startswith("."))


async def test_the_documented_example_writes_a_finished_segment_kumocore_reads(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "json"
    await run(
        tmp_path,
        f"""
        local kumo = require 'kumo'
        local writer = kumo.jsonl.new_writer {{
          log_dir = '{logs}',
          max_file_size = 268435456, -- 256 MiB
          max_segment_duration = '1h',
          compression_level = 3,
          suffix = '.zst',
        }}
        writer:write_record {{ event = 'Delivery', id = 'abc123' }}
        writer:write_record {{ event = 'Bounce', id = 'def456' }}
        writer:close()
    """,
    )
    [path] = segments(logs)
    assert NAME.match(path.name) and path.name.endswith(".zst")
    assert is_done(path)  # read-only: a tailer knows it is complete
    assert list(iter_records(logs)) == [
        {"event": "Delivery", "id": "abc123"},
        {"event": "Bounce", "id": "def456"},
    ]


async def test_segments_roll_at_max_file_size_and_a_tailer_reads_them_all(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    marks = await run(
        tmp_path,
        f"""
        local kumo = require 'kumo'
        local w = kumo.jsonl.new_writer {{ log_dir = '{logs}', max_file_size = 25 }}
        for i = 1, 6 do w:write_line(string.format('{{"n":%d,"pad":"xxxx"}}', i)) end
        w:write_line('{{"n":7}}\\n')  -- already ends with a newline: none added
        w:close()
        local t = kumo.jsonl.new_tailer {{ directory = '{logs}' }}
        local got = {{}}
        for batch in t:batches() do
          for r in batch:iter_records() do table.insert(got, r.n) end
          t:close()
        end
        kumo.test.mark(got)
    """,
    )
    assert marks == [[1, 2, 3, 4, 5, 6, 7]]
    files = segments(logs)
    assert len(files) == 4  # 22 bytes a line: two lines fill 25 bytes; the last is short
    assert all(is_done(p) for p in files)


async def test_a_segment_older_than_max_segment_duration_is_finished_after_a_write(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    await run(
        tmp_path,
        f"""
        local kumo = require 'kumo'
        local w = kumo.jsonl.new_writer {{ log_dir = '{logs}', max_segment_duration = '50ms' }}
        w:write_record {{ n = 1 }}
        kumo.time.sleep(0.1)
        w:write_record {{ n = 2 }}  -- lands in the old segment, which is then finished
        w:write_record {{ n = 3 }}  -- opens a new one
        w:close()
    """,
    )
    first, second = segments(logs)
    assert list(iter_records(first)) == [{"n": 1}, {"n": 2}]
    assert list(iter_records(second)) == [{"n": 3}]


async def test_writing_after_close_opens_a_new_segment(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    await run(
        tmp_path,
        f"""
        local w = require('kumo').jsonl.new_writer {{ log_dir = '{logs}' }}
        w:write_record {{ n = 1 }}
        w:close()
        w:close()
        w:write_record {{ n = 2 }}
        w:close()
    """,
    )
    assert [list(iter_records(p)) for p in segments(logs)] == [[{"n": 1}], [{"n": 2}]]


async def test_the_tz_option_names_segments_in_that_zone(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    before = datetime.now(UTC) + timedelta(hours=14)
    await run(
        tmp_path,
        f"""
        local w = require('kumo').jsonl.new_writer {{ log_dir = '{logs}', tz = 'Etc/GMT-14' }}
        w:write_line('{{}}')
        w:close()
    """,
    )
    after = datetime.now(UTC) + timedelta(hours=14)
    [path] = segments(logs)
    match = NAME.match(path.name)
    assert match
    stamp = datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    assert before.replace(microsecond=0) <= stamp <= after


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ("{}", "missing field `log_dir`"),
        ("{ log_dir = 'x', compression_level = 30 }", "compression_level must be 0"),
        ("{ log_dir = 'x', tz = 'Mars/Olympus' }", "unknown time zone"),
        ("{ log_dir = 'x', max_segment_duration = 'later' }", "not a duration"),
    ],
)
async def test_bad_writer_options_are_named(tmp_path: Path, config: str, error: str) -> None:
    with pytest.raises(PolicyError, match=error):
        await run(tmp_path, f"require('kumo').jsonl.new_writer {config}")


async def test_a_to_be_closed_writer_finishes_its_segment_at_the_end_of_its_scope(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    marks = await run(
        tmp_path,
        f"""
        local kumo = require 'kumo'
        do
          local w <close> = kumo.jsonl.new_writer {{ log_dir = '{logs}' }}
          w:write_record {{ n = 1 }}
        end
        local t <close> = kumo.jsonl.new_tailer {{ directory = '{logs}' }}
        kumo.test.mark(t:batches()():records())
        """,
    )
    assert marks == [[{"n": 1}]]
    [path] = segments(logs)
    assert is_done(path)
