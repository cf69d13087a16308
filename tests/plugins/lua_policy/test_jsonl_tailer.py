"""kumo.jsonl.new_tailer / new_multi_tailer: reading KumoMTA-format log segments (zstd JSON
lines; a segment is finished when read-only) from Lua policies, in order, in batches, with
KumoMTA's checkpoint files, following segments as they are written and rotated."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard
from kumocore_local_logs import LocalLogsPlugin

from kumocore import PolicyError
from tests.core.logs.fakes import record

from .support import Recorder, load, make_runtime


def segment(directory: Path, name: str, records: list[Any], *, done: bool = True) -> Path:
    """A segment as KumoMTA writes one: JSON lines in a zstd stream, read-only when done."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    path.write_bytes(zstandard.ZstdCompressor(level=3).compress(data))
    if done:
        path.chmod(0o444)
    return path


def ids(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"type": "Delivery", "id": i} for i in range(start, stop)]


async def run(tmp_path: Path, source: str, recorder: Recorder | None = None) -> list[Any]:
    recorder = recorder or Recorder()
    await load(tmp_path, source, recorder=recorder)
    return recorder.marks


def collect(
    directory: Path,
    options: str = "",
    *,
    batches: int,
    commit: int | None = None,
    filter_fn: str = "",
) -> str:
    """A policy reading ``batches`` batches, marking {consumer, ids...} of each, committing
    the first ``commit`` of them (all by default), then closing the tailer."""
    extra = f", {filter_fn}" if filter_fn else ""
    return f"""
        local kumo = require 'kumo'
        local tailer = kumo.jsonl.new_tailer({{ directory = '{directory}' {options} }}{extra})
        local n = 0
        for batch in tailer:batches() do
          n = n + 1
          local got = {{ batch:consumer_name() }}
          for record in batch:iter_records() do table.insert(got, record.id) end
          kumo.test.mark(got)
          if {commit or "n"} >= n then batch:commit() end
          if n == {batches} then tailer:close() end
        end
        kumo.test.mark('closed')
    """


async def test_segments_are_read_in_name_order_in_batches_of_max_batch_size(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    segment(logs, "20260101-000001.000000000", ids(3, 5))
    segment(logs, "20260101-000000.000000000", ids(0, 3))
    marks = await run(tmp_path, collect(logs, ", max_batch_size = 2", batches=3))
    assert marks == [["default", 0, 1], ["default", 2, 3], ["default", 4], "closed"]


async def test_records_written_by_kumocores_local_logs_are_read_across_rotation(
    tmp_path: Path,
) -> None:
    line = len(record(queue="q00").to_json_bytes()) + 1
    sink = LocalLogsPlugin().configure(log_dir=str(tmp_path / "logs"), max_file_size=line * 3)
    for i in range(7):
        await sink.write_batch([record(queue=f"q{i}")])
    await sink.close()
    assert len(list((tmp_path / "logs").iterdir())) >= 2  # it did rotate
    marks = await run(
        tmp_path,
        f"""
        local kumo = require 'kumo'
        local tailer = kumo.jsonl.new_tailer {{ directory = '{tmp_path / "logs"}' }}
        for batch in tailer:batches() do
          for _, r in ipairs(batch:records()) do kumo.test.mark(r.queue .. ':' .. r.type) end
          tailer:close()
        end
    """,
    )
    assert marks == [f"q{i}:Delivery" for i in range(7)]


async def test_a_restarted_tailer_resumes_after_the_last_committed_batch(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    first = segment(logs, "20260101-000000.000000000", ids(0, 3))
    segment(logs, "20260101-000001.000000000", ids(3, 6))
    options = ", max_batch_size = 2, checkpoint_name = 'cp'"
    # Two batches read, only the first committed: the second is read again after a restart.
    marks = await run(tmp_path, collect(logs, options, batches=2, commit=1))
    assert marks == [["default", 0, 1], ["default", 2, 3], "closed"]
    assert orjson.loads((logs / ".cp").read_bytes()) == {"file": str(first), "line": 2}
    marks = await run(tmp_path, collect(logs, options, batches=2))
    assert marks == [["default", 2, 3], ["default", 4, 5], "closed"]
    # Everything committed: a third run finds nothing before its latency-bound poll.
    marks = await run(
        tmp_path,
        f"""
        local kumo = require 'kumo'
        local t = kumo.jsonl.new_tailer {{ directory = '{logs}', checkpoint_name = 'cp',
                                           poll_watcher = '10ms' }}
        kumo.test.mark(kumo.serde.json_parse(io.open('{logs}/.cp'):read('a')).line)
        t:close()
        kumo.test.mark(t:batches()() == nil)
    """,
    )
    assert marks == [3, True]


async def test_a_checkpoint_written_by_kumomta_is_honoured(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    segment(logs, "20260101-000000.000000000", ids(0, 3))
    second = segment(logs, "20260101-000001.000000000", ids(3, 6))
    (logs / ".webhook").write_text(orjson.dumps({"file": str(second), "line": 1}).decode())
    marks = await run(tmp_path, collect(logs, ", checkpoint_name = 'webhook'", batches=1))
    assert marks == [["default", 4, 5], "closed"]


async def test_a_segment_is_followed_while_written_and_rotated(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    recorder = Recorder()
    policy = asyncio.create_task(
        run(
            tmp_path,
            f"""
        local kumo = require 'kumo'
        local t = kumo.jsonl.new_tailer {{ directory = '{logs}', max_batch_size = 10,
                                           max_batch_latency = '50ms', poll_watcher = '10ms' }}
        local seen = 0
        for batch in t:batches() do
          local got = {{}}
          for _, r in ipairs(batch:records()) do table.insert(got, r.id) end
          kumo.test.mark(got)
          seen = seen + #got
          if seen == 6 then t:close() end
        end
    """,
            recorder,
        )
    )
    # A segment in progress: two flushed frames so far, not read-only yet.
    path = logs / "20260101-000000.000000000"
    compressor = zstandard.ZstdCompressor()
    with path.open("wb") as f:
        f.write(compressor.compress(b'{"id": 0}\n{"id": 1}\n'))
    await recorder.wait_for_marks(1)
    assert recorder.marks == [[0, 1]]  # a partial batch, handed out at max_batch_latency
    with path.open("ab") as f:
        f.write(compressor.compress(b'{"id": 2}\n'))
    path.chmod(0o444)  # finished; the writer rotates to a new segment
    segment(logs, "20260101-000002.000000000", [{"id": 3}, {"id": 4}, {"id": 5}], done=False)
    await asyncio.wait_for(policy, 5)
    assert [i for got in recorder.marks for i in got] == [0, 1, 2, 3, 4, 5]


async def test_the_tail_option_starts_at_the_newest_segment(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    segment(logs, "20260101-000000.000000000", ids(0, 3))
    segment(logs, "20260101-000001.000000000", ids(3, 5))
    (logs / ".cp").write_text('{"file": "x", "line": 0}')  # ignored with tail = true
    marks = await run(tmp_path, collect(logs, ", tail = true, checkpoint_name = 'cp'", batches=1))
    assert marks == [["default", 3, 4], "closed"]


async def test_a_filter_sees_records_as_tables_and_fills_batches_with_kept_ones(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    segment(
        logs,
        "a",
        [{"type": "Delivery" if i % 3 else "Bounce", "id": i, "meta": {"n": i}} for i in range(9)],
    )
    filter_fn = "function(r) return r.type == 'Bounce' or r.meta.n == 8 end"
    marks = await run(
        tmp_path, collect(logs, ", max_batch_size = 2", batches=2, filter_fn=filter_fn)
    )
    assert marks == [["default", 0, 3], ["default", 6, 8], "closed"]


async def test_an_error_in_the_filter_reaches_the_caller(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    segment(logs, "a", ids(0, 2))
    with pytest.raises(PolicyError, match="filter says no"):
        await run(
            tmp_path, collect(logs, batches=1, filter_fn="function(r) error('filter says no') end")
        )


async def test_a_filter_that_waits_for_io_fails_with_a_clear_error(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    segment(logs, "a", ids(0, 1))
    sleepy = "function(r) kumo.time.sleep(0) return true end"
    with pytest.raises(PolicyError, match=r"tailer:batches\(\).*kumo.time.sleep needs I/O"):
        await run(tmp_path, collect(logs, batches=1, filter_fn=sleepy))


async def test_a_foreign_file_is_skipped_and_later_segments_still_read(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    segment(logs, "a", ids(0, 1))
    (logs / "b").write_bytes(b"not zstd at all\n")
    segment(logs, "c", ids(1, 2))
    marks = await run(tmp_path, collect(logs, batches=1))
    assert marks == [["default", 0, 1], "closed"]


async def test_a_second_commit_is_a_no_op_and_records_are_gone_after_commit(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    segment(logs, "a", ids(0, 2))
    marks = await run(
        tmp_path,
        f"""
        local kumo = require 'kumo'
        local t = kumo.jsonl.new_tailer {{ directory = '{logs}', checkpoint_name = 'c' }}
        local batch = t:batches()()
        kumo.test.mark(#batch:records())
        batch:commit()
        batch:commit()
        kumo.test.mark({{ #batch:records(), batch:consumer_name(), batch:iter_records()() }})
        t:close()
    """,
    )
    assert marks == [2, [0, ""]]


async def test_the_multi_tailer_fans_one_read_out_to_independent_consumers(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    segment(logs, "a", [{"type": "Delivery" if i % 2 else "Bounce", "id": i} for i in range(6)])
    (logs / ".cp-bounces").write_text(orjson.dumps({"file": str(logs / "a"), "line": 1}).decode())
    marks = await run(
        tmp_path,
        f"""
        local kumo = require 'kumo'
        local consumers = {{
          {{ name = 'deliveries', checkpoint_name = 'cp-deliveries', max_batch_size = 2,
             filter = function(record) return record.type == 'Delivery' end }},
          {{ name = 'bounces', checkpoint_name = 'cp-bounces', max_batch_latency = '5s',
             filter = function(record) return record.type == 'Bounce' end }},
        }}
        local tailer = kumo.jsonl.new_multi_tailer {{ directory = '{logs}', consumers = consumers }}
        kumo.test.mark(type(consumers[1].filter))  -- the policy's table is left alone
        local rounds = 0
        for batches in tailer:batches() do
          rounds = rounds + 1
          for _, batch in ipairs(batches) do
            local got = {{ batch:consumer_name() }}
            for record in batch:iter_records() do table.insert(got, record.id) end
            kumo.test.mark(got)
            batch:commit()
          end
          if rounds == 2 then tailer:close() end
        end
    """,
    )
    # The bounces consumer's checkpoint is past record 0; its batch waits for the end.
    assert marks == ["function", ["deliveries", 1, 3], ["deliveries", 5], ["bounces", 2, 4]]
    checkpoint = orjson.loads((logs / ".cp-deliveries").read_bytes())
    assert checkpoint == {"file": str(logs / "a"), "line": 6}


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ("{}", "missing field `directory`"),
        ("{ directory = '/nonexistent/x' }", "does not exist"),
        ("{ directory = '.', max_batch_size = 0 }", "max_batch_size must be an integer >= 1"),
        ("{ directory = '.', max_batch_latency = 'soon' }", "not a duration"),
        ("{ directory = '.', bogus = 1 }", "unknown field"),
    ],
)
async def test_bad_tailer_options_are_named(tmp_path: Path, config: str, error: str) -> None:
    with pytest.raises(PolicyError, match=error):
        await run(tmp_path, f"require('kumo').jsonl.new_tailer {config}")


@pytest.mark.serial  # a stall bound (250 ms): measured on a machine not running other tests
async def test_reading_a_large_backlog_does_not_hold_the_event_loop(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    for n in range(4):
        segment(logs, f"s{n}", [{"id": i, "pad": "x" * 200} for i in range(25_000)])
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = loop.time()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    marks = await run(
        tmp_path,
        f"""
        local kumo = require 'kumo'
        local t = kumo.jsonl.new_tailer {{ directory = '{logs}', max_batch_size = 1000 }}
        local total = 0
        for batch in t:batches() do
          total = total + #batch:records()
          if total == 100000 then t:close() end
        end
        kumo.test.mark(total)
    """,
    )
    stop.set()
    await task
    assert marks == [100_000]
    # One step reads at most READ_LINES lines in a thread; converting a 1000-record batch
    # to Lua tables is the longest the loop is held.
    assert max(gaps) < 0.25, max(gaps)


def test_a_1_gb_line_is_skipped_without_being_held_in_memory(tmp_path: Path) -> None:
    import tracemalloc

    from kumocore_lua_policy.stdlib.jsonl_segment import MAX_LINE, SegmentReader

    path = tmp_path / "huge"
    compressor = zstandard.ZstdCompressor(level=1).compressobj()
    chunk = b"x" * (1 << 20)
    with path.open("wb") as f:
        f.write(compressor.compress(b'{"id": 0}\n{"id": "'))
        for _ in range(1024):  # 1 GiB in one line
            f.write(compressor.compress(chunk))
        f.write(compressor.compress(b'"}\n{"id": 2}\n'))
        f.write(compressor.flush())
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        reader = SegmentReader(path)
        got, at_end = [], False
        while not at_end:
            records, at_end = reader.read(100)
            got.extend(records)
        peak = tracemalloc.get_traced_memory()[1]
        reader.close()
    finally:
        tracemalloc.stop()
    assert got == [(0, {"id": 0}), (2, {"id": 2})]  # line 1 skipped, still counted
    assert reader.lines == 3
    assert peak < 4 * MAX_LINE, peak


async def test_python_policies_get_the_same_functions_with_python_filters(tmp_path: Path) -> None:
    kumo = make_runtime().kumo
    writer = kumo.jsonl.new_writer({"log_dir": str(tmp_path / "logs")})
    for n in range(6):
        writer.write_record({"n": n})
    writer.close()

    async def even(record: dict[str, Any]) -> bool:  # a filter may be a coroutine function
        await asyncio.sleep(0)
        return record["n"] % 2 == 0

    tailer = kumo.jsonl.new_tailer(
        {"directory": str(tmp_path / "logs"), "checkpoint_name": "py"}, even
    )
    batch = await tailer.batches()()
    assert (batch.consumer_name(), batch.records()) == ("default", [{"n": 0}, {"n": 2}, {"n": 4}])
    await batch.commit()
    tailer.close()
    assert await tailer.batches()() is None
    assert orjson.loads((tmp_path / "logs" / ".py").read_bytes())["line"] == 6


async def test_kumocores_local_logs_are_followed_while_they_write_and_rotate(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    line = len(record(queue="q00").to_json_bytes()) + 1
    sink = LocalLogsPlugin().configure(log_dir=str(logs), max_file_size=line * 4)
    await sink.write_batch([record(queue="q00")])
    recorder = Recorder()
    policy = asyncio.create_task(
        run(
            tmp_path,
            f"""
        local kumo = require 'kumo'
        local t = kumo.jsonl.new_tailer {{ directory = '{logs}', max_batch_latency = '20ms',
                                           poll_watcher = '10ms' }}
        local seen = 0
        for batch in t:batches() do
          for record in batch:iter_records() do
            kumo.test.mark(record.queue)
            seen = seen + 1
          end
          if seen == 12 then t:close() end
        end
    """,
            recorder,
        )
    )
    for i in range(1, 12):
        await asyncio.sleep(0.01)
        await sink.write_batch([record(queue=f"q{i:02d}")])
    await sink.close()
    await asyncio.wait_for(policy, 5)
    assert recorder.marks == [f"q{i:02d}" for i in range(12)]
    assert len([p for p in logs.iterdir() if not p.name.startswith(".")]) >= 3


async def test_closing_between_polls_closes_the_segment_being_read(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    segment(logs, "a", ids(0, 5), done=False)  # still being written: stays open
    marks = await run(
        tmp_path,
        f"""
        local kumo = require 'kumo'
        local t = kumo.jsonl.new_tailer {{ directory = '{logs}', max_batch_size = 2 }}
        kumo.test.mark(#t:batches()():records())
        kumo.test.mark(#kumo.fs.read_dir('/proc/self/fd'))
        t:close()
        kumo.test.mark(#kumo.fs.read_dir('/proc/self/fd'))
        """,
    )
    assert marks[0] == 2
    assert marks[2] == marks[1] - 1
