from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
import zstandard

from kumocore import ZstdSegmentWriter
from kumocore.logs.reader import Follower, cat, follow, is_done, iter_records, tail


class SegmentWriter(ZstdSegmentWriter):
    """A segment written as kumocore's writers write theirs (one frame, a block flushed per
    batch), by their one encoder."""

    live: ClassVar[list[SegmentWriter]] = []  # not finished: closed at teardown

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        SegmentWriter.live.append(self)

    def add(self, *records: dict[str, Any]) -> None:
        for rec in records:
            self.write(orjson.dumps(rec) + b"\n")
        self.flush()

    def finish(self) -> None:
        SegmentWriter.live.remove(self)
        self.close()
        self.mark_done()


@pytest.fixture(autouse=True)
def close_unfinished_segments() -> Iterator[None]:
    """A segment left in progress (as a running or crashed writer leaves it) is closed
    after the test: what the test saw was the in-progress file."""
    yield
    while SegmentWriter.live:
        SegmentWriter.live.pop().close()


def rec(type: str = "Delivery", queue: str = "example.net", n: int = 0) -> dict[str, Any]:
    return {"type": type, "id": f"{n:032x}", "queue": queue}


def finished_segment(path: Path, *records: dict[str, Any]) -> Path:
    writer = SegmentWriter(path)
    writer.add(*records)
    writer.finish()
    return path


def test_iter_records_reads_segments_oldest_first_including_in_progress(tmp_path: Path) -> None:
    finished_segment(tmp_path / "20250101-000000.000000001", rec(n=1), rec(n=2))
    live = SegmentWriter(tmp_path / "20250101-000001.000000000")
    live.add(rec(n=3))
    (tmp_path / ".checkpoint").write_text("ignored")
    assert [r["id"][-1] for r in iter_records(tmp_path)] == ["1", "2", "3"]
    assert is_done(tmp_path / "20250101-000000.000000001")
    assert not is_done(live.path)


def test_iter_records_filters_by_type_and_exact_queue(tmp_path: Path) -> None:
    finished_segment(
        tmp_path / "seg",
        rec("Reception", "a.com", 1),
        rec("Delivery", "a.com", 2),
        rec("Bounce", "b.com", 3),
        rec("Delivery", "b.com", 4),
    )
    assert [r["id"][-1] for r in iter_records(tmp_path, types={"Delivery"})] == ["2", "4"]
    assert [r["id"][-1] for r in iter_records(tmp_path, queue="b.com")] == ["3", "4"]
    picked = iter_records(tmp_path / "seg", types={"Delivery", "Bounce"}, queue="b.com")
    assert [r["id"][-1] for r in picked] == ["3", "4"]


def test_iter_records_of_a_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(iter_records(tmp_path / "nope"))


def test_a_segment_with_several_frames_is_read_whole(tmp_path: Path) -> None:
    frames = [zstandard.ZstdCompressor().compress(orjson.dumps(rec(n=i)) + b"\n") for i in range(3)]
    (tmp_path / "seg").write_bytes(b"".join(frames))
    assert len(list(iter_records(tmp_path))) == 3


def test_follower_returns_only_new_records_and_forgets_done_segments(tmp_path: Path) -> None:
    follower = Follower(tmp_path)
    assert follower.poll() == []
    first = SegmentWriter(tmp_path / "20250101-000000.000000000")
    first.add(rec(n=1))
    assert [r["id"][-1] for _, r in follower.poll()] == ["1"]
    first.add(rec(n=2))
    first.finish()
    second = SegmentWriter(tmp_path / "20250101-000001.000000000")
    second.add(rec(n=3))
    assert [r["id"][-1] for _, r in follower.poll()] == ["2", "3"]
    assert follower.poll() == []
    assert list(follower._decoders) == [second.path.name]


def test_cat_prints_the_matching_lines_as_written(tmp_path: Path) -> None:
    finished_segment(tmp_path / "seg", rec("Reception", n=1), rec("Delivery", n=2))
    out = io.StringIO()
    assert cat(tmp_path, ["Delivery"], None, out) == 1
    assert out.getvalue() == orjson.dumps(rec("Delivery", n=2)).decode() + "\n"


async def test_tail_prints_the_last_lines_then_follows_new_records(tmp_path: Path) -> None:
    live = SegmentWriter(tmp_path / "20250101-000000.000000000")
    live.add(*(rec(n=i) for i in range(5)))
    out, stop = io.StringIO(), asyncio.Event()
    task = asyncio.create_task(
        tail(tmp_path, None, None, out, lines=2, poll_interval=0.01, stop=stop)
    )
    await asyncio.sleep(0.05)
    assert [orjson.loads(x)["id"][-1] for x in out.getvalue().splitlines()] == ["3", "4"]
    live.add(rec(n=5))
    live.finish()
    finished_segment(tmp_path / "20250101-000001.000000000", rec(n=6))
    await asyncio.sleep(0.05)
    stop.set()
    assert await task == 4
    assert [orjson.loads(x)["id"][-1] for x in out.getvalue().splitlines()] == ["3", "4", "5", "6"]


async def test_tail_without_follow_returns_at_once(tmp_path: Path) -> None:
    finished_segment(tmp_path / "seg", rec(n=1))
    out = io.StringIO()
    assert await tail(tmp_path, None, None, out, follow=False) == 1


async def test_follow_waits_for_the_directory_and_new_segments(tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    stop = asyncio.Event()
    seen: list[dict[str, Any]] = []

    async def consume() -> None:
        async for record in follow(directory, types=["Bounce"], poll_interval=0.01, stop=stop):
            seen.append(record)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.03)
    directory.mkdir()
    finished_segment(directory / "seg1", rec("Delivery", n=1), rec("Bounce", n=2))
    await asyncio.sleep(0.05)
    assert [r["id"][-1] for r in seen] == ["2"]
    stop.set()
    await task


def test_a_crashed_segment_is_read_up_to_its_last_complete_block(tmp_path: Path) -> None:
    live = SegmentWriter(tmp_path / "seg")
    live.add(rec(n=1), rec(n=2))
    intact = live.path.read_bytes()
    live.write(orjson.dumps(rec(n=3)) * 50)
    live.flush()
    torn = live.path.read_bytes()[: len(intact) + 20]  # killed in the middle of a block
    live.path.chmod(0o644)
    live.path.write_bytes(torn)
    live.path.chmod(0o444)  # what the next start-up does to a crashed run's segment
    assert [r["id"][-1] for r in iter_records(tmp_path)] == ["1", "2"]
