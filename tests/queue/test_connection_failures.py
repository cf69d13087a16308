"""``consecutive_connection_failures_before_delay`` (KumoMTA's semantics): a path whose
hosts all refuse connections fails, per exhausted round, only the message that round was
for; once more than N rounds in a row failed, every message still in the ready queue is
delayed with KumoMTA's ``451 4.4.1 bulk delay`` response."""

from __future__ import annotations

from typing import Any

import pytest

from bench.common.serve_process import free_port
from tests.queue.harness import Bench

MESSAGES = 6


async def _refused(make_bench: Any, before_delay: int | None, count: int = MESSAGES) -> Bench:
    path: dict[str, Any] = {"smtp_port": free_port(), "connection_limit": 1}
    if before_delay is not None:
        path["consecutive_connection_failures_before_delay"] = before_delay
    bench: Bench = await make_bench(path=path, queue={"retry_interval": "1h"})
    for n in range(count):
        await bench.inject(f"r{n}@example.com")
    return bench


def _split(bench: Bench) -> tuple[list[str], list[str]]:
    """Recipients failed by their own round, and recipients delayed in bulk."""
    own, bulk = [], []
    for record in bench.log_sink.of_type("TransientFailure"):
        content = record["response"]["content"]
        (bulk if "bulk delay of ready queue" in content else own).append(record["recipient"])
    return own, bulk


@pytest.mark.parametrize("before_delay", [0, 2])
async def test_queue_is_delayed_in_bulk_only_after_more_than_n_failed_rounds(
    make_bench: Any, before_delay: int,
) -> None:
    bench = await _refused(make_bench, before_delay)
    await bench.wait_for_records("TransientFailure", MESSAGES, timeout=20)
    own, bulk = _split(bench)
    # rounds 1..N+1 each fail their own message; round N+1 exceeds N and delays the rest
    assert len(own) == before_delay + 1
    assert len(bulk) == MESSAGES - before_delay - 1
    [record] = [r for r in bench.log_sink.of_type("TransientFailure")
                if r["recipient"] == bulk[0]]
    assert record["response"]["code"] == 451
    assert record["response"]["enhanced_code"] == {"class": 4, "subject": 4, "detail": 1}
    assert all("bulk delay" not in r["response"]["content"]
               for r in bench.log_sink.of_type("TransientFailure") if r["recipient"] in own)
    (ready,) = bench.queues.paths.values()
    assert ready.connection_failures == before_delay + 1
    assert not ready.messages and len(bench.queues.scheduler) == MESSAGES
    # past the threshold the path backs off: no reconnect loop while the MX is dead
    assert ready.backoff.failures == 1 and ready.backoff.active


async def test_default_of_100_fails_each_message_in_its_own_round(make_bench: Any) -> None:
    bench = await _refused(make_bench, None)
    await bench.wait_for_records("TransientFailure", MESSAGES, timeout=30)
    own, bulk = _split(bench)
    assert sorted(own) == [f"r{n}@example.com" for n in range(MESSAGES)]
    assert bulk == []
    (ready,) = bench.queues.paths.values()
    assert ready.connection_failures == MESSAGES
    assert ready.backoff.failures == 0  # below the threshold rounds are not paused


async def test_a_connection_that_opens_resets_the_count(make_bench: Any) -> None:
    bench = await _refused(make_bench, 50, count=2)
    await bench.wait_for_records("TransientFailure", 2, timeout=30)
    (ready,) = bench.queues.paths.values()
    assert ready.connection_failures == 2
    ready.config = ready.config.__class__.from_options(
        {"smtp_port": bench.sink.port, "prohibited_hosts": [], "idle_timeout": 0.2})
    await bench.inject("works@example.com")
    await bench.wait_for_records("Delivery", 1, timeout=20)
    assert ready.connection_failures == 0
