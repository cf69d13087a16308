"""Real reception parts for listener tests: a Runtime with an in-memory spool, the real
intake, a recording queue (delivery is tested elsewhere) and a recording log sink."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kumocore.intake import Intake
from kumocore.logs.dispatch import LogDispatcher
from kumocore.logs.record import LogRecord
from kumocore.message import Message
from kumocore.runtime import Runtime
from kumocore.spool.base import MemorySpool
from kumocore.spool.store import MessageStore
from tests.support.wiring import wire

HOSTNAME = "mx.kumocore.test"


@dataclass
class RecordingQueues:
    """Stands in for the QueueManager: remembers every insert."""

    inserted: list[tuple[Message, str, Any]] = field(default_factory=list)

    def insert(self, message: Message, queue_name: str, queue_config: Any) -> None:
        self.inserted.append((message, queue_name, queue_config))

    @property
    def messages(self) -> list[Message]:
        return [message for message, _, _ in self.inserted]


class RecordingSink:
    """A log sink keeping every record."""

    name = "recording"

    def __init__(self) -> None:
        self.records: list[LogRecord] = []

    async def write_batch(self, records: Sequence[LogRecord]) -> None:
        self.records.extend(records)

    async def close(self) -> None:
        return None


@dataclass
class Reception:
    runtime: Runtime
    queues: RecordingQueues
    sink: RecordingSink
    data_spool: MemorySpool
    meta_spool: MemorySpool
    logs: LogDispatcher | None = None  # closed at the end even if a test unwired it

    @property
    def messages(self) -> list[Message]:
        return self.queues.messages

    async def records(self, *types: str, settle: float = 0.05) -> list[LogRecord]:
        """Log records of the given types once the dispatcher delivered them."""
        await asyncio.sleep(settle)
        return [r for r in self.sink.records if not types or r.type.value in types]

    async def close(self) -> None:
        if self.logs is not None:
            await self.logs.close(timeout=1.0)


async def make_reception(
    *policies: object, hostname: str = HOSTNAME, policy_file: str | None = None,
    plugins: tuple[tuple[str, object], ...] = (),
) -> Reception:
    """A Runtime whose policy is ``policies`` (objects with ``@hookimpl`` methods), or the
    file ``policy_file`` (loaded and its ``init`` run, with the given extra ``plugins``)."""
    extra = plugins + tuple(
        ("policy" if i == 0 else f"policy{i}", policy) for i, policy in enumerate(policies))
    runtime = Runtime(load_entrypoints=False, extra_plugins=extra, hostname=hostname)
    if policy_file is not None:
        await runtime.load(policy_file)
    data_spool, meta_spool = MemorySpool("data"), MemorySpool("meta")
    queues, sink = RecordingQueues(), RecordingSink()
    services = wire(runtime, store=MessageStore(data_spool, meta_spool),
                    logs=LogDispatcher([sink], batch_latency=0))
    # The intake queues into the recording stand-in, not the (unstarted) queue manager.
    intake = Intake(hooks=runtime.hooks, store=services.store, logs=services.logs,
                    queues=queues, nodeid=runtime.nodeid,
                    receptions=services.metrics.receptions)
    runtime.services = dataclasses.replace(services, intake=intake)
    await services.logs.start()
    return Reception(runtime, queues, sink, data_spool, meta_spool, services.logs)
