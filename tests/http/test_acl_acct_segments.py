"""The accounting log's segment files as KumoMTA's: ``acct-%Y%m%d-%H%M%S%.f`` names in UTC
(plus ``-w<k>`` under ``--workers``), marked done when finished and at start-up (never
another live worker's), rotated by size and by age even when idle, read back by
``kumocore logs``."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard
from structlog.testing import capture_logs

from kumocore import ZstdSegmentWriter
from kumocore.http import acct_segments
from kumocore.http.acct_segments import Worker, mark_leftovers_done, segment_name
from kumocore.http.acl_acct import AcctLog
from kumocore.http.acl_check import AccessControl
from kumocore.logs.cli import add_logs_subcommand, run_logs
from kumocore.logs.reader import is_done
from tests.support.ticker import LoopTicker

#: 2026-12-06 09:13:14 UTC, in nanoseconds.
SECOND = 1_796_548_394 * 1_000_000_000
WORKER_ENV = ("KUMOCORE_WORKER_INDEX", "KUMOCORE_WORKER_COUNT")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Freezes the segments' clock at the nanosecond given."""

    def freeze(unix_ns: int) -> None:
        monkeypatch.setattr(acct_segments, "time_ns", lambda: unix_ns)

    return freeze


@pytest.fixture(autouse=True)
def single_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in WORKER_ENV:
        monkeypatch.delenv(name, raising=False)
    yield


def as_worker(monkeypatch: pytest.MonkeyPatch, index: int, count: int) -> None:
    monkeypatch.setenv(WORKER_ENV[0], str(index))
    monkeypatch.setenv(WORKER_ENV[1], str(count))


def whole_frame(path: Path) -> bytes:
    """The segment's content, failing unless its zstd frame was ended."""
    decoder = zstandard.ZstdDecompressor().decompressobj()
    data = decoder.decompress(path.read_bytes())
    assert decoder.eof, f"{path.name}: the zstd frame was not ended"
    return data


def leftover(path: Path, finish_frame: bool = True) -> Path:
    """A segment a previous (crashed) run left writable."""
    writer = ZstdSegmentWriter(path)
    writer.write(b'{"n": -1}\n')
    writer.flush()
    torn = path.read_bytes()  # what a crash leaves: flushed blocks, no frame end
    writer.close()
    if not finish_frame:
        path.write_bytes(torn)
    return path


@pytest.mark.parametrize(
    ("nanos", "name"),
    [
        (123_456_789, "acct-20261206-091314.123456789"),
        (123_456_000, "acct-20261206-091314.123456"),  # chrono's %.f: the fewest of 3/6/9
        (120_000_000, "acct-20261206-091314.120"),
        (0, "acct-20261206-091314"),  # a whole second: no fraction, no dot
    ],
)
async def test_segments_are_named_as_kumomtas_in_utc(
    tmp_path: Path, clock: Callable[[int], None], nanos: int, name: str
) -> None:
    clock(SECOND + nanos)
    acct = AcctLog({"log_dir": str(tmp_path)})
    acct.submit({"n": 1})
    await acct.drain()
    acct.close()
    assert [p.name for p in tmp_path.iterdir()] == [name]


async def test_a_worker_adds_its_index_to_the_name(
    tmp_path: Path, clock: Callable[[int], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock(SECOND + 5)
    as_worker(monkeypatch, 3, 4)
    acct = AcctLog({"log_dir": str(tmp_path)})
    acct.submit({"n": 1})
    await acct.drain()
    acct.close()
    assert [p.name for p in tmp_path.iterdir()] == ["acct-20261206-091314.000000005-w3"]


async def test_segments_opened_in_one_nanosecond_get_distinct_names(
    tmp_path: Path, clock: Callable[[int], None]
) -> None:
    clock(SECOND)
    acct = AcctLog({"log_dir": str(tmp_path), "max_file_size": 1})
    for n in range(3):
        acct.submit({"n": n})
    await acct.drain()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "acct-20261206-091314",
        "acct-20261206-091314.000000001",
        "acct-20261206-091314.000000002",
    ]
    clock(SECOND + 2)  # every later nanosecond is taken too: bounded, then an error
    for n in range(acct_segments.NAME_TRIES):
        (tmp_path / segment_name(SECOND + 3 + n)).touch()
    with pytest.raises(FileExistsError, match="no free accounting log segment name"):
        acct_segments.open_segment(tmp_path, 3, None)


def test_names_sort_in_time_order_whatever_the_fraction_width() -> None:
    times = [SECOND, SECOND + 1, SECOND + 120_000_000, SECOND + 120_000_001, SECOND + 10**9]
    for worker in (None, Worker(1, 2), Worker(10, 12)):
        names = [segment_name(t, worker) for t in times]
        assert sorted(names) == names


async def test_a_segment_is_done_after_the_record_that_reaches_max_file_size(
    tmp_path: Path,
) -> None:
    acct = AcctLog({"log_dir": str(tmp_path), "max_file_size": 30})
    acct.submit({"n": 0, "pad": "x" * 30})  # past the bound alone: finished at once
    await acct.drain()
    (first,) = tmp_path.iterdir()
    assert is_done(first) and whole_frame(first).count(b"\n") == 1
    acct.submit({"n": 1})  # 9 bytes: the next segment stays open
    await acct.drain()
    (second,) = set(tmp_path.iterdir()) - {first}
    assert not is_done(second)
    acct.close()
    assert is_done(second) and whole_frame(second) == b'{"n":1}\n'


async def test_max_segment_duration_finishes_an_idle_segment(tmp_path: Path) -> None:
    acct = AcctLog({"log_dir": str(tmp_path), "max_segment_duration": 0.2})
    acct.submit({"n": 0})
    await acct.drain()
    (segment,) = tmp_path.iterdir()
    assert not is_done(segment)
    for _ in range(100):  # no further record comes
        await asyncio.sleep(0.02)
        if is_done(segment):
            break
    assert is_done(segment) and whole_frame(segment) == b'{"n":0}\n'
    acct.submit({"n": 1})
    await acct.drain()
    assert len(list(tmp_path.iterdir())) == 2
    acct.close()


async def test_leftovers_are_marked_done_before_the_first_segment(tmp_path: Path) -> None:
    crashed = leftover(tmp_path / "acct-20250101-000000.5", finish_frame=False)
    foreign = leftover(tmp_path / "20250101-000000.000000001-4242")  # an older kumocore's
    (tmp_path / ".checkpoint").write_text("a reader's: left alone")
    acct = AcctLog({"log_dir": str(tmp_path)})
    assert not is_done(crashed)  # configuring (kumocore validate) touches nothing
    acct.submit({"n": 1})
    await acct.drain()
    assert is_done(crashed) and is_done(foreign)
    assert not is_done(tmp_path / ".checkpoint")
    (ours,) = set(tmp_path.iterdir()) - {crashed, foreign, tmp_path / ".checkpoint"}
    assert not is_done(ours)
    acct.close()


async def test_a_worker_leaves_another_live_workers_open_segment_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = ZstdSegmentWriter(tmp_path / "acct-20261206-091314.5-w1")  # worker 1, writing
    live.write(b'{"n": 10}\n')
    live.flush()
    mine = leftover(tmp_path / "acct-20261206-091310-w0")  # this worker's previous run
    gone = leftover(tmp_path / "acct-20261206-091311.25-w2")  # a worker of a larger -N run
    untagged = leftover(tmp_path / "acct-20261206-091312.1")  # a single-process run's
    as_worker(monkeypatch, 0, 2)
    acct = AcctLog({"log_dir": str(tmp_path)})
    acct.submit({"n": 1})
    await acct.drain()
    assert [is_done(p) for p in (mine, gone, untagged)] == [True, True, True]
    assert not is_done(live.path)
    live.write(b'{"n": 11}\n')  # worker 1 goes on writing its segment
    live.close()
    assert whole_frame(live.path) == b'{"n": 10}\n{"n": 11}\n'
    acct.close()


def test_only_worker_zero_takes_untagged_leftovers(tmp_path: Path) -> None:
    untagged = leftover(tmp_path / "acct-20261206-091312.1")
    assert mark_leftovers_done(tmp_path, Worker(1, 2)) == []
    assert not is_done(untagged)
    assert mark_leftovers_done(tmp_path, None) == [untagged]
    assert mark_leftovers_done(tmp_path / "missing", None) == []


async def test_a_failed_write_loses_its_batch_and_the_log_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = acct_segments.open_segment
    failures = [OSError(28, "No space left on device")]

    def flaky(*args: Any) -> ZstdSegmentWriter:
        if failures:
            raise failures.pop()
        return real(*args)

    monkeypatch.setattr("kumocore.http.acl_acct.open_segment", flaky)
    acct = AcctLog({"log_dir": str(tmp_path)})
    acct.submit({"n": 1})
    await asyncio.wait_for(acct.drain(), 5)
    acct.submit({"n": 2})
    await asyncio.wait_for(acct.drain(), 5)
    acct.close()
    assert [orjson.loads(line) for line in read_back(tmp_path)] == [{"n": 2}]


def read_back(directory: Path) -> list[str]:
    """``kumocore logs cat DIRECTORY``'s lines."""
    parser = argparse.ArgumentParser(prog="kumocore")
    add_logs_subcommand(parser.add_subparsers(dest="command", required=True))
    out = io.StringIO()
    assert run_logs(parser.parse_args(["logs", "cat", str(directory)]), out) == 0
    return out.getvalue().splitlines()


async def test_kumocore_logs_reads_finished_and_open_segments_in_order(tmp_path: Path) -> None:
    acct = AcctLog({"log_dir": str(tmp_path), "max_file_size": 40})
    for n in range(5):
        acct.submit({"type": "Authorization", "n": n})
    await acct.drain()
    segments = sorted(tmp_path.iterdir())
    assert [is_done(p) for p in segments] == [True, True, False]  # two records a segment
    assert [orjson.loads(line)["n"] for line in read_back(tmp_path)] == [0, 1, 2, 3, 4]
    acct.close()


async def test_the_open_segment_is_written_and_finished_when_the_node_stops(
    tmp_path: Path,
) -> None:
    access = AccessControl(_no_acl)
    access.acct = AcctLog({"log_dir": str(tmp_path)})
    access.acct.submit({"n": 1})
    await access.close()  # what Server.stop calls: the queued record is written first
    (segment,) = tmp_path.iterdir()
    assert is_done(segment) and whole_frame(segment) == b'{"n":1}\n'


async def test_a_write_stuck_past_the_stop_bound_is_left_alone_and_the_loss_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stuck disk: the writer thread's write does not return. The stop waits its bound,
    # says what is lost, and does not close the segment under the write in progress.
    release, entered = threading.Event(), threading.Event()
    write = AcctLog._write

    def stuck_write(self: AcctLog, lines: list[bytes]) -> None:
        entered.set()
        release.wait(10)
        write(self, lines)

    monkeypatch.setattr(AcctLog, "_write", stuck_write)
    access = AccessControl(_no_acl)
    access.acct = acct = AcctLog({"log_dir": str(tmp_path)})
    acct.submit({"n": 1})
    await asyncio.to_thread(entered.wait, 5)
    acct.submit({"n": 2})
    started = time.monotonic()
    with capture_logs() as logs:
        async with LoopTicker() as ticker:
            await access.close(timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 2.0
    assert ticker.longest < 0.1
    [event] = [e for e in logs if e["log_level"] == "error"]
    assert "not written in time" in event["event"] and event["queued"] == 1
    release.set()
    await acct.drain()  # the stuck write finishes in its thread, unharmed
    (segment,) = tmp_path.iterdir()
    assert not is_done(segment)  # left for the next start to mark, as KumoMTA's
    acct.close()


async def _no_acl(resource: str) -> tuple[bool, None]:
    return False, None


def test_a_leftover_that_cannot_be_marked_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = leftover(tmp_path / "acct-20261206-091312.1")
    other = leftover(tmp_path / "acct-20261206-091313.1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(other)
    chmod = os.chmod

    def refuse_stuck(path: str, mode: int) -> None:
        if path == str(stuck):
            raise PermissionError(1, "Operation not permitted", path)
        chmod(path, mode)

    monkeypatch.setattr(os, "chmod", refuse_stuck)
    assert mark_leftovers_done(tmp_path, None) == [other]
    assert not is_done(stuck) and is_done(other)
