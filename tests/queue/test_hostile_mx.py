"""Delivery to a hostile MX: every message ends as a logged TransientFailure and is
rescheduled (never stranded), the egress path backs off instead of reconnecting in a
loop, and everything is delivered once the MX behaves (issue 14, finding 9)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bench.common.hostile_mx import SHORT_TIMEOUTS, HostileMx
from kumocore.queue.backoff import CONNECT_BACKOFF_FIRST
from kumocore.spool.base import MemorySpool
from tests.queue.harness import Bench, hostile_bench


def _accounted(bench: Bench) -> bool:
    """Every message the manager owns is queued somewhere: scheduled, ready or in
    flight on a connection — none only in memory."""
    queues = bench.queues
    ready = {m.id for r in queues.paths.values() for m in [*r.messages, *r.overflow]}
    in_flight = sum(r.connections for r in queues.paths.values())
    loose = [i for i in queues.messages if i not in queues.scheduler and i not in ready]
    return len(loose) <= in_flight


@pytest.mark.parametrize(
    "mode", ["oversized_banner", "oversized_mail", "oversized_data", "endless_multiline",
             "garbage", "reset", "starttls_injection"]
)
async def test_hostile_mx_failures_are_logged_retried_and_delivered_once_benign(
    make_bench: Any, mx: HostileMx, mode: str
) -> None:
    mx.mode = mode
    bench = await hostile_bench(make_bench, mx)
    for n in range(3):
        await bench.inject(f"r{n}@example.com")
    records = await bench.wait_for_records("TransientFailure", 3, timeout=20)
    assert all(400 <= r["response"]["code"] < 500 for r in records)
    assert bench.log_sink.of_type("Delivery") == []
    await bench.wait_until(lambda: len(bench.queues.scheduler) > 0)
    assert _accounted(bench)
    mx.mode = "benign"
    await bench.wait_for_records("Delivery", 3, timeout=40)
    await bench.wait_until(lambda: bench.spooled() == 0)
    assert sorted(m.recipient for m in mx.messages) == [f"r{n}@example.com" for n in range(3)]


@pytest.mark.slow
async def test_oversized_banner_with_mail_arriving_backs_off_instead_of_reconnecting(
    make_bench: Any, mx: HostileMx
) -> None:
    # Before the fix: ~540 connections/s. Now each failure doubles the path's pause,
    # however many messages keep arriving.
    mx.mode = "oversized_banner"
    # 0: every failed connection round delays the whole ready queue (KumoMTA's bulk
    # delay) and backs the path off, which is what this test measures.
    bench = await hostile_bench(make_bench, mx, retry="1m",
                         consecutive_connection_failures_before_delay=0)
    started = time.monotonic()
    for n in range(100):
        await bench.inject(f"r{n}@example.com")
        await asyncio.sleep(0.03)
    elapsed = time.monotonic() - started
    # The first messages may open a few connections at once, before the first failure;
    # after it, 1 + 2 s of backoff fit in the remaining ~2 s: one or two more attempts,
    # each trying both MX hosts of example.com (2 connections).
    burst = mx.connections_since(started) - mx.connections_since(started + 1)
    later = mx.connections_since(started + 1)
    times = [round(t - started, 2) for t in mx.connections]
    assert burst <= 32 and later <= 4, (burst, later, elapsed, times)
    await bench.wait_for_records("TransientFailure", 100, timeout=30)
    (ready,) = bench.queues.paths.values()
    assert ready.backoff.failures >= 2
    assert ready.backoff.until > time.monotonic() - 1


@pytest.mark.slow
async def test_failures_in_session_back_off_the_path_and_a_reply_resets_it(
    make_bench: Any, mx: HostileMx
) -> None:
    mx.mode = "oversized_mail"
    bench = await hostile_bench(make_bench, mx, retry="1m")
    started = time.monotonic()
    first = await bench.inject("first@example.com")
    await bench.wait_for_records("TransientFailure", 1, timeout=10)
    for n in range(10):
        await bench.inject(f"r{n}@example.com")
    await asyncio.sleep(2.5 * CONNECT_BACKOFF_FIRST)
    # After the first failure the path waits 1 s, then one probe connection takes one
    # message and fails, then 2 s: not one connection after another until the queue
    # is empty.
    (ready,) = bench.queues.paths.values()
    assert mx.connections_since(started) <= 3, mx.connections
    assert ready.backoff.failures == 2
    assert len(ready.messages) >= 8  # the rest wait for the path, still queued
    assert first.id in bench.queues.scheduler  # retried later, not stranded
    assert _accounted(bench)
    mx.mode = "benign"
    await bench.wait_until(lambda: not ready.messages and ready.backoff.failures == 0, timeout=10)
    await bench.wait_for_records("Delivery", 9, timeout=10)


@pytest.mark.slow
async def test_slow_drip_mx_hits_the_banner_timeout_and_is_retried(
    make_bench: Any, mx: HostileMx
) -> None:
    mx.mode = "slow_drip"
    mx.drip_interval = 1.0
    bench = await hostile_bench(make_bench, mx)
    await bench.inject("r@example.com")
    (record,) = await bench.wait_for_records("TransientFailure", 1, timeout=10)
    content = record["response"]["content"]
    assert content.startswith("KumoMTA internal: failed to connect to any candidate hosts: ")
    assert "for response to banner" in content
    mx.mode = "benign"
    await bench.wait_for_records("Delivery", 1, timeout=20)


class _FailingReads(MemorySpool):
    """A data spool whose reads fail while ``failing`` is set (a disk read error)."""

    failing = True

    async def get(self, key: str) -> bytes | None:
        if self.failing:
            raise OSError(5, "Input/output error")
        return await super().get(key)


async def test_a_spool_read_error_at_delivery_is_a_transient_failure_not_a_lost_message(
    make_bench: Any, mx: HostileMx
) -> None:
    bench = await hostile_bench(make_bench, mx)
    assert bench.runtime.services.store is not None
    failing = _FailingReads("data")
    bench.runtime.services.store.data = failing
    message = await bench.inject("r@example.com")
    message.release_data()  # as for a message recovered from the spool: read at delivery
    (record,) = await bench.wait_for_records("TransientFailure", 1)
    assert record["response"]["code"] == 400  # KumoMTA: error in deliver_message, no enhanced code
    assert record["response"]["content"].startswith(
        "KumoMTA internal: error in deliver_message: spool read failed")
    await bench.wait_until(lambda: message.id in bench.queues.scheduler)
    failing.failing = False
    await bench.wait_for_records("Delivery", 1, timeout=10)
    assert [m.recipient for m in mx.messages] == ["r@example.com"]


async def test_a_message_rate_store_error_puts_the_message_back_not_stranding_it(
    make_bench: Any, mx: HostileMx
) -> None:
    bench: Bench = await make_bench(
        path={"smtp_port": mx.port, "max_message_rate": "100/s", **SHORT_TIMEOUTS})
    store = bench.runtime.services.throttles or bench.queues.egress.local
    real_throttle = store.throttle
    failures: list[bool] = []

    async def fails_once(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append(True)
            raise RuntimeError("throttle store broke")
        return await real_throttle(*args, **kwargs)

    store.throttle = fails_once  # type: ignore[method-assign]
    message = await bench.inject("r@example.com")
    await bench.wait_until(lambda: bool(failures))
    assert _accounted(bench)
    await bench.wait_for_records("Delivery", 1, timeout=10)  # after the path's 1 s pause
    assert [m.recipient for m in mx.messages] == ["r@example.com"]
    # It leaves the queue once its record is written (just after the record arrives here).
    await bench.wait_until(lambda: message.id not in bench.queues.messages)


async def test_system_shutdown_timeout_bounds_a_paths_in_flight_delivery_at_stop(
    make_bench: Any, mx: HostileMx
) -> None:
    """An MX dripping one byte a second holds a delivery in flight; at shutdown the path's
    system_shutdown_timeout (1 s) cuts it well before the server's own timeout (8 s)."""
    mx.mode = "slow_drip"
    bench: Bench = await make_bench(path={"smtp_port": mx.port, **SHORT_TIMEOUTS,
                                          "banner_timeout": "30s",
                                          "system_shutdown_timeout": "1s"})  # fmt: skip
    await bench.inject("held@example.com")
    deadline = time.monotonic() + 10
    while not any(r.connections for r in bench.queues.paths.values()):
        assert time.monotonic() < deadline, "no connection opened"
        await asyncio.sleep(0.05)
    started = time.monotonic()
    await bench.queues.stop(timeout=8.0)
    assert time.monotonic() - started < 4.0



async def test_a_stopped_path_opens_no_connection_for_a_message_put_back(
    make_bench: Any, mx: HostileMx
) -> None:
    """A delivery cancelled at stop may hand its message back to its path as the
    connection ends, and the ending connection wakes the path: a stopped path must not
    open another connection (it would deliver after the node stopped)."""
    mx.mode = "slow_drip"
    bench: Bench = await make_bench(path={"smtp_port": mx.port, **SHORT_TIMEOUTS,
                                          "banner_timeout": "30s",
                                          "system_shutdown_timeout": "0.5s"})  # fmt: skip
    message = await bench.inject("held@example.com")
    deadline = time.monotonic() + 10
    while not any(r.connections for r in bench.queues.paths.values()):
        assert time.monotonic() < deadline, "no connection opened"
        await asyncio.sleep(0.05)
    [path] = bench.queues.paths.values()
    await bench.queues.stop(timeout=8.0)
    stopped = time.monotonic()
    path.messages.append(message)  # what a cancelled connection's put-back leaves
    path.wake()  # what the ending connection calls
    await asyncio.sleep(0.5)
    assert mx.connections_since(stopped) == 0 and path.connections == 0
