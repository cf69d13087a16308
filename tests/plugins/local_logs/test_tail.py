from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import orjson
from kumocore_local_logs import LocalLogsPlugin

from kumocore.logs import LogDispatcher
from kumocore.logs.reader import follow, tail
from tests.core.logs.fakes import record


async def until(predicate: Any, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_follow_sees_records_as_the_sink_flushes_them_across_rotations(
    tmp_path: Path,
) -> None:
    line = len(record(queue="q00").to_json_bytes()) + 1
    sink = LocalLogsPlugin().configure(
        log_dir=str(tmp_path), max_file_size=line * 4,
        per_record={"Bounce": {"suffix": "_bounce"}})
    dispatcher = LogDispatcher([sink], batch_latency=0.005)
    await dispatcher.start()
    stop, seen = asyncio.Event(), []

    async def consume() -> None:
        async for rec in follow(tmp_path, poll_interval=0.01, stop=stop):
            seen.append(rec["queue"])

    consumer = asyncio.create_task(consume())
    expected = []
    for i in range(10):
        queue = f"q{i:02d}"
        expected.append(queue)
        dispatcher.submit(record("Bounce" if i % 3 == 0 else "Delivery", queue=queue))
        await asyncio.sleep(0.01)
    await until(lambda: len(seen) == 10)
    await dispatcher.close()
    await asyncio.sleep(0.03)
    stop.set()
    await consumer
    assert sorted(seen) == expected  # bounces live in their own segments
    assert len(seen) == 10  # nothing read twice after segments were finished


async def test_tail_prints_new_records_written_by_the_sink(tmp_path: Path) -> None:
    sink = LocalLogsPlugin().configure(log_dir=str(tmp_path))
    await sink.write_batch([record(queue="old")])
    out, stop = io.StringIO(), asyncio.Event()
    task = asyncio.create_task(
        tail(tmp_path, ["Delivery"], None, out, lines=0, poll_interval=0.01, stop=stop))
    await asyncio.sleep(0.05)
    assert out.getvalue() == ""  # lines=0: only what comes next
    await sink.write_batch([record("Reception", queue="skip"), record(queue="new")])
    await until(lambda: out.getvalue() != "")
    await sink.close()
    stop.set()
    assert await task == 1
    assert orjson.loads(out.getvalue())["queue"] == "new"
