"""``kumocore serve --workers 2``: shared listeners, spool shards, restarts, clean stop.

A real supervisor and two real workers (``kumocore serve`` subprocesses) load a small
Python policy; mail goes to a recording sink on 127.0.0.1 found through the test DNS
server. The policy stamps each message with the PID of the worker that received it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.redis_server import free_port
from bench.common.sink import RecordingSink
from bench.common.smtp_client import RawSmtpClient
from kumocore.runtime import Runtime
from kumocore.workers import shard_path, shard_spools

pytestmark = pytest.mark.slow

KUMOCORE = Path(sys.executable).with_name("kumocore")
DOMAIN = "workers.test"
SHUTDOWN_TIMEOUT = 3.0

POLICY = """
from __future__ import annotations
import os
from typing import Any
from kumocore import hookimpl

ENV = os.environ
_kumo: Any = None

@hookimpl
def kumo_init(kumo: Any) -> None:
    global _kumo
    _kumo = kumo
    var = ENV["W_DIR"]
    kumo.dns.configure_resolver(name_servers=[ENV["W_DNS"]])
    kumo.define_spool(name="data", path=f"{var}/spool/data", kind="LocalDisk")
    kumo.define_spool(name="meta", path=f"{var}/spool/meta", kind="LocalDisk")
    kumo.start_esmtp_listener(listen=f"127.0.0.1:{ENV['W_SMTP']}", relay_hosts=["127.0.0.1"])
    if ENV.get("W_FAIL") == ENV["KUMOCORE_WORKER_INDEX"]:
        raise ValueError("this worker cannot start")
    if ENV.get("W_SLOW") == ENV["KUMOCORE_WORKER_INDEX"]:
        import time
        time.sleep(2.0)
        with open(f"{var}/slow-worker-ready", "w") as fh:
            fh.write(repr(time.time()))

@hookimpl
def kumo_smtp_server_message_received(message: Any, conn_meta: Any) -> None:
    message.prepend_header("X-Worker-Pid", str(os.getpid()))

@hookimpl
def kumo_get_egress_path_config(domain: str, egress_source: str, site_name: str) -> Any:
    return _kumo.make_egress_path(
        smtp_port=int(ENV["W_SINK"]), prohibited_hosts=[], enable_tls="Disabled",
        connection_limit=int(ENV.get("W_LIMIT", "32")), max_message_rate=ENV.get("W_RATE"))
"""


class Node:
    """``kumocore serve --workers 2`` in its own session (the test's cleanup kills the group)."""

    def __init__(self, root: Path, dns: str, sink_port: int, **extra_env: str) -> None:
        self.root = root
        self.smtp_port = free_port()
        self.log = root / "kumocore.log"
        self.policy = root / "policy.py"
        self.policy.write_text(POLICY)
        self.env = {**os.environ, "W_DIR": str(root), "W_DNS": dns, "W_SINK": str(sink_port),
                    "W_SMTP": str(self.smtp_port),
                    "KUMOCORE_BLOCK_PLUGINS": "hello,webhook_sink", **extra_env}  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(KUMOCORE), "--log-level", "info", "serve", "--policy", str(self.policy),
                 "--workers", "2", "--shutdown-timeout", str(SHUTDOWN_TIMEOUT)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, start_new_session=True,
            )  # fmt: skip
        return self.process

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for_log(self, needle: str, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.text().count(needle) < count:
            assert self.process is not None and self.process.poll() is None, self.text()
            assert time.monotonic() < deadline, f"no {count}x {needle!r}:\n{self.text()}"
            await asyncio.sleep(0.1)

    def kill_group(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    zones: dict[str, dict[str, Any]] = {
        DOMAIN: {"MX": [(10, f"mx.{DOMAIN}")]},
        f"mx.{DOMAIN}": {"A": ["127.0.0.1"]},
    }
    with TestDnsServer(zones) as server:
        yield server


@pytest.fixture
async def sink() -> AsyncIterator[RecordingSink]:
    async with RecordingSink() as recording:
        yield recording


@pytest.fixture
def node(tmp_path: Path, dns: TestDnsServer, sink: RecordingSink) -> Iterator[Node]:
    started = Node(tmp_path, dns.address, sink.port)
    yield started
    started.kill_group()


@pytest.fixture
def limited_node(tmp_path: Path, dns: TestDnsServer, sink: RecordingSink) -> Iterator[Node]:
    started = Node(tmp_path, dns.address, sink.port, W_LIMIT="1", W_RATE="10/s")
    yield started
    started.kill_group()


async def send(port: int, connection: int, count: int) -> None:
    client = await RawSmtpClient.connect(port)
    try:
        await client.hello()
        for n in range(count):
            recipient = f"c{connection}m{n}@{DOMAIN}"
            body = f"To: <{recipient}>\r\nSubject: {connection}/{n}\r\n\r\nhello\r\n"
            _, final = await client.send_mail("s@src.test", [recipient], body)
            assert final.code == 250, str(final)
        await client.command("QUIT")
    finally:
        await client.close()


def worker_pids(sink: RecordingSink) -> set[int]:
    pids = set()
    for message in sink.messages:
        for line in message.data.splitlines():
            if line.lower().startswith(b"x-worker-pid:"):
                pids.add(int(line.split(b":", 1)[1]))
    return pids


async def test_two_workers_share_the_port_deliver_everything_and_stop_on_sigterm(
    node: Node, sink: RecordingSink
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
    node: Node, sink: RecordingSink
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


async def first_accept(node: Node, timeout: float) -> float | None:
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
    node = Node(tmp_path, dns.address, sink.port, W_SLOW="1")
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
        node.kill_group()


async def test_a_worker_that_cannot_start_stops_the_node_before_it_listens(
    tmp_path: Path, dns: TestDnsServer, sink: RecordingSink
) -> None:
    node = Node(tmp_path, dns.address, sink.port, W_FAIL="1")
    try:
        process = node.start()
        assert await first_accept(node, timeout=30) is None
        assert await asyncio.to_thread(process.wait, 10) == 2
        assert "worker exited during start-up" in node.text()
    finally:
        node.kill_group()


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
    limited_node: Node, sink: RecordingSink
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
