"""A delivery test bench: a kumocore.testing node with memory spools, a test DNS server, a
recording sink and a recording log sink, driven by a small Python policy object."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.common.dns_server import TestDnsServer
from bench.common.hostile_mx import SHORT_TIMEOUTS, HostileMx
from bench.common.sink import RecordingSink
from kumocore import hookimpl
from kumocore.config import EgressPathConfig, EgressPool, QueueConfig
from kumocore.mail.message import Message
from kumocore.node.runtime import Runtime
from kumocore.queue.manager import QueueManager
from kumocore.spool.base import MemorySpool
from kumocore.testing import Node


class RecordingLogSink:
    name = "recording"

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    async def write_batch(self, records: Any) -> None:
        self.records.extend(r.to_json() for r in records)

    async def close(self) -> None:
        return None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["type"] == kind]


@dataclass
class ShapingPolicy:
    """Answers the egress lookups from plain tables, like a small operator policy."""

    sink_port: int
    path: dict[str, Any] = field(default_factory=dict)
    queue: dict[str, Any] = field(default_factory=dict)
    pools: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @hookimpl
    def kumo_get_egress_path_config(self, domain: str) -> EgressPathConfig:
        return EgressPathConfig.from_options(
            {"smtp_port": self.sink_port, "prohibited_hosts": [], "idle_timeout": 0.2, **self.path}
        )

    @hookimpl
    def kumo_get_queue_config(self) -> QueueConfig:
        return QueueConfig.from_options(self.queue)

    @hookimpl
    def kumo_get_egress_pool(self, pool_name: str) -> EgressPool | None:
        entries = self.pools.get(pool_name)
        return EgressPool.from_options({"name": pool_name, "entries": entries}) if entries else None


@dataclass
class _LogSinkPlugin:
    sink: RecordingLogSink

    @hookimpl
    def kumo_register_log_sinks(self) -> list[RecordingLogSink]:
        return [self.sink]


ZONES: dict[str, Any] = {
    "example.com": {"MX": [(10, "mx1.example.com"), (20, "mx2.example.com")]},
    "mx1.example.com": {"A": ["127.0.0.1"]},
    "mx2.example.com": {"A": ["127.0.0.1"]},
    "other.example": {"MX": [(10, "mx1.example.com"), (20, "mx2.example.com")]},
    "nullmx.example": {"MX": [(0, ".")]},
    "looped.example": {"MX": [(10, "mx1.example.com")]},
}


class Bench:
    """A started kumocore.testing node (memory spools, real queues, no listeners) whose
    policy is ``policy``, resolving through ``dns`` and delivering to ``sink``, with a
    recording log sink; messages are put straight into its queues."""

    def __init__(
        self, policy: ShapingPolicy, dns: TestDnsServer, sink: RecordingSink,
        log_sink: RecordingLogSink | None = None,
    ) -> None:
        self.policy, self.dns, self.sink = policy, dns, sink
        self.log_sink = log_sink or RecordingLogSink()
        self.node = Node(plugins=[_LogSinkPlugin(self.log_sink), policy], dns=dns, sink=sink,
                         entrypoints=False, listen=False)

    @property
    def runtime(self) -> Runtime:
        return self.node.runtime

    @property
    def queues(self) -> QueueManager:
        queues: QueueManager = self.node.runtime.services.queues
        return queues

    async def start(self) -> Bench:
        await self.node.start()
        return self

    async def stop(self) -> None:
        await self.node.stop(timeout=3.0)

    async def inject(
        self,
        recipient: str,
        *,
        queue: str | None = None,
        sender: str = "a@src.test",
        meta: dict[str, Any] | None = None,
        body: bytes = b"Subject: test\r\n\r\nhello\r\n",
    ) -> Message:
        message = Message(sender, recipient, body, meta=meta or {})
        assert self.runtime.services.store is not None
        await self.runtime.services.store.save(message)
        config = QueueConfig.from_options(self.policy.queue)
        self.queues.insert(message, queue or message.recipient.domain, config)
        return message

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out; records: {[r['type'] for r in self.log_sink.records]}"
                )
            await asyncio.sleep(0.02)

    async def wait_for_records(
        self, kind: str, count: int, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        await self.wait_until(lambda: len(self.log_sink.of_type(kind)) >= count, timeout)
        return self.log_sink.of_type(kind)

    def spooled(self) -> int:
        assert self.runtime.services.store is not None
        meta = self.runtime.services.store.meta
        assert isinstance(meta, MemorySpool)
        return len(meta)


async def hostile_bench(
    make_bench: Callable[..., Awaitable[Bench]], mx: HostileMx, retry: str = "1s", **path: Any
) -> Bench:
    """A bench delivering to ``mx`` with short timeouts, retrying every ``retry``."""
    return await make_bench(
        path={"smtp_port": mx.port, **SHORT_TIMEOUTS, **path},
        queue={"retry_interval": retry, "max_retry_interval": retry},
    )
