"""``kumocore serve --workers 2``: shared listeners, spool shards, restarts, clean stop.

A real supervisor and two real workers (``kumocore serve`` subprocesses) load a small
Python policy (:mod:`tests.support.worker_node`); mail goes to a recording sink on
127.0.0.1 found through the test DNS server. The policy stamps each message with the PID
of the worker that received it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.sink import RecordingSink
from kumocore.node.runtime import Runtime
from kumocore.node.workers import shard_path, shard_spools
from tests.support.worker_node import SHUTDOWN_TIMEOUT, WorkerNode, mx_dns, worker_pids
from tests.support.worker_node import send as send_to

pytestmark = pytest.mark.slow

DOMAIN = "workers.test"


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    with mx_dns(DOMAIN) as server:
        yield server


@pytest.fixture
async def sink() -> AsyncIterator[RecordingSink]:
    async with RecordingSink() as recording:
        yield recording


@pytest.fixture
def node(tmp_path: Path, dns: TestDnsServer, sink: RecordingSink) -> Iterator[WorkerNode]:
    started = WorkerNode(tmp_path, dns.address, sink.port)
    yield started
    started.kill9()


@pytest.fixture
def limited_node(tmp_path: Path, dns: TestDnsServer, sink: RecordingSink) -> Iterator[WorkerNode]:
    started = WorkerNode(tmp_path, dns.address, sink.port, W_LIMIT="1", W_RATE="10/s")
    yield started
    started.kill9()


async def send(port: int, connection: int, count: int) -> None:
    await send_to(port, DOMAIN, connection, count)


async def test_two_workers_share_the_port_deliver_everything_and_stop_on_sigterm(
    node: WorkerNode, sink: RecordingSink
) -> None:
    process = node.start()
    await node.wait_for_log("kumocore worker ready", 2)
    await asyncio.gather(*(send(node.smtp_port, c, 2) for c in range(25)))
    received = await sink.wait_for(50, timeout=30)
    assert len({m.recipient for m in received}) == 50
    pids = worker_pids(sink)
    assert len(pids) == 2, f"connections reached only {pids}"
    assert all((node.root / "spool" / "meta" / f"worker-{k}").is_dir() for k in (0, 1))

    started = time.monotonic()
    process.send_signal(signal.SIGTERM)  # the parent only: it must stop the workers
    assert await asyncio.to_thread(process.wait, SHUTDOWN_TIMEOUT + 5) == 0
    assert time.monotonic() - started < SHUTDOWN_TIMEOUT + 5
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_a_worker_that_dies_is_restarted_and_takes_mail_again(
    node: WorkerNode, sink: RecordingSink
) -> None:
    node.start()
    await node.wait_for_log("kumocore worker ready", 2)
    await send(node.smtp_port, 0, 1)
    await sink.wait_for(1, timeout=30)
    (victim,) = worker_pids(sink)
    os.kill(victim, signal.SIGKILL)
    await node.wait_for_log("worker exited", 1)
    await node.wait_for_log("kumocore worker ready", 3)
    sent = 1
    while len(worker_pids(sink) - {victim}) < 2:  # the survivor and the replacement
        assert sent < 60, f"only {worker_pids(sink)} took mail after the restart"
        await asyncio.gather(*(send(node.smtp_port, sent + c, 1) for c in range(5)))
        sent += 5
        await sink.wait_for(sent, timeout=30)


async def first_accept(node: WorkerNode, timeout: float) -> float | None:
    """When the node's port first accepted a connection (None: never, or it exited)."""
    assert node.process is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and node.process.poll() is None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", node.smtp_port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        accepted = time.time()
        writer.close()
        return accepted
    return None


async def test_the_port_opens_only_once_every_worker_has_started(
    tmp_path: Path, dns: TestDnsServer, sink: RecordingSink
) -> None:
    node = WorkerNode(tmp_path, dns.address, sink.port, W_SLOW="1")
    try:
        node.start()
        accepted = await first_accept(node, timeout=30)
        assert accepted is not None, node.text()
        slow_ready = float((tmp_path / "slow-worker-ready").read_text())
        assert accepted >= slow_ready  # worker 0 was up 2 s earlier, yet the port stayed shut
        await node.wait_for_log("kumocore ready", 1)
        await asyncio.gather(*(send(node.smtp_port, c, 1) for c in range(20)))
        await sink.wait_for(20, timeout=30)
        assert len(worker_pids(sink)) == 2  # the slow worker takes its share from the start
    finally:
        node.kill9()


async def test_a_worker_that_cannot_start_stops_the_node_before_it_listens(
    tmp_path: Path, dns: TestDnsServer, sink: RecordingSink
) -> None:
    node = WorkerNode(tmp_path, dns.address, sink.port, W_FAIL="1")
    try:
        process = node.start()
        assert await first_accept(node, timeout=30) is None
        assert await asyncio.to_thread(process.wait, 10) == 2
        assert "worker exited during start-up" in node.text()
    finally:
        node.kill9()


async def test_worker_k_keeps_each_spool_in_the_worker_k_directory_of_its_path(
    tmp_path: Path,
) -> None:
    runtime = Runtime()
    runtime.kumo.define_spool(name="data", path=str(tmp_path / "data"))
    runtime.kumo.define_spool(name="meta", path=str(tmp_path / "meta"))
    shard_spools(runtime, 1)
    assert runtime.config.spools["meta"].path == shard_path(str(tmp_path / "meta"), 1)
    assert runtime.config.spools["meta"].path == str(tmp_path / "meta" / "worker-1")


async def test_connection_limit_and_message_rate_hold_for_the_node_not_per_worker(
    limited_node: WorkerNode, sink: RecordingSink
) -> None:
    """connection_limit = 1 and max_message_rate = 10/s, no Redis: with two workers the
    sink sees at most one connection at a time, and 30 messages take about two seconds
    (10 at once, then 10/s) — per-worker limits would allow 2 connections and ~0.5 s."""
    limited_node.start()
    await limited_node.wait_for_log("kumocore worker ready", 2)
    await asyncio.gather(*(send(limited_node.smtp_port, c, 1) for c in range(30)))
    received = await sink.wait_for(30, timeout=60)
    assert len(worker_pids(sink)) == 2, "both workers must have mail for this to mean much"
    assert sink.state.max_active["127.0.0.1"] == 1
    arrivals = sorted(m.at for m in received)
    assert arrivals[-1] - arrivals[0] >= 1.5, f"30 messages in {arrivals[-1] - arrivals[0]:.2f}s"
