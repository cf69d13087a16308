"""A finished message leaves the spool only once its record is written (issue 14, 17)."""

from __future__ import annotations

import time
from typing import Any


class FailingThenWorking:
    """A log sink on a full disk: every write fails until ``healed``."""

    name = "recording"

    def __init__(self) -> None:
        self.healed = False
        self.records: list[dict[str, Any]] = []
        self.failures = 0

    async def write_batch(self, records: Any) -> None:
        if not self.healed:
            self.failures += 1
            raise OSError(28, "No space left on device")
        self.records.extend(r.to_json() for r in records)

    async def close(self) -> None:
        return None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["type"] == kind]


def failing_log_sink(bench: Any) -> FailingThenWorking:
    """Swap the bench's log sink for one that fails (its lane keeps its sink object)."""
    sink = FailingThenWorking()
    lane = bench.runtime.services.logs._lanes[0]
    lane.sink = bench.log_sink = sink
    return sink


async def test_delivered_message_stays_spooled_until_its_record_is_written(make_bench) -> None:
    bench = await make_bench()
    sink = failing_log_sink(bench)
    await bench.inject("rcpt@example.com")
    await bench.wait_until(lambda: len(bench.sink.messages) == 1)
    await bench.wait_until(lambda: sink.failures >= 3)  # retried, not given up on
    assert bench.spooled() == 1
    sink.healed = True
    await bench.wait_until(lambda: bench.spooled() == 0)
    assert [r["recipient"] for r in sink.of_type("Delivery")] == ["rcpt@example.com"]


async def test_shutdown_with_an_unwritable_record_keeps_the_message_and_is_bounded(
    make_bench
) -> None:
    bench = await make_bench()
    failing_log_sink(bench)
    await bench.inject("rcpt@example.com")
    await bench.wait_until(lambda: len(bench.sink.messages) == 1)
    started = time.monotonic()
    await bench.stop()
    assert time.monotonic() - started < 6  # not held up by the unwritable record
    assert bench.spooled() == 1  # handled again at the next start
