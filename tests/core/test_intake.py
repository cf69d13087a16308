"""Intake: queue config is resolved before acknowledgement; durable before queued."""

from __future__ import annotations

import dataclasses
from typing import Any

from kumocore import hookimpl
from kumocore.config import QueueConfig
from kumocore.intake import Intake
from kumocore.message import Message
from kumocore.runtime import Runtime
from kumocore.spool.base import MemorySpool
from kumocore.spool.store import MessageStore
from tests.support.wiring import wire


class RecordingQueues:
    def __init__(self) -> None:
        self.inserted: list[tuple[str, str, QueueConfig]] = []

    def insert(self, message: Message, queue_name: str, config: QueueConfig) -> None:
        self.inserted.append((message.id, queue_name, config))


class TenantPolicy:
    """Like the reference policy: only known tenants have a queue config."""

    @hookimpl
    def kumo_get_queue_config(self, tenant: str | None) -> Any:
        if tenant != "TenantOne":
            raise KeyError(f"no params for tenant {tenant!r}")
        return QueueConfig.from_options({"egress_pool": "TenantOne", "max_age": "5 minutes"})


def make_runtime(store: MessageStore | None = None) -> tuple[Runtime, RecordingQueues]:
    """A runtime whose intake spools to ``store`` and queues into a recording stand-in."""
    runtime = Runtime(load_entrypoints=False, extra_plugins=(("policy", TenantPolicy()),))
    services = wire(runtime, store=store)
    queues = RecordingQueues()
    intake = Intake(hooks=runtime.hooks, store=services.store, logs=None, queues=queues,
                    nodeid=runtime.nodeid, receptions=services.metrics.receptions)
    runtime.services = dataclasses.replace(services, intake=intake)
    return runtime, queues


def intake_of(runtime: Runtime) -> Intake:
    assert runtime.intake is not None
    return runtime.intake


def message(tenant: str | None = None, **meta: Any) -> Message:
    msg = Message("a@sender.test", "b@example.com", b"Subject: x\r\n\r\nbody\r\n", meta=meta)
    if tenant:
        msg.set_meta("tenant", tenant)
    return msg


async def test_accepted_message_is_spooled_then_queued_with_its_config() -> None:
    runtime, queues = make_runtime()
    accepted = await intake_of(runtime).accept([message("TenantOne")], reception_protocol="ESMTP")
    assert accepted[0].ok
    assert runtime.store is not None and len(runtime.store.meta) == 1  # type: ignore[arg-type]
    (_, queue_name, config), = queues.inserted
    assert queue_name == "TenantOne@example.com"
    assert config.egress_pool == "TenantOne" and config.max_age == 300


async def test_queue_config_error_refuses_the_message_and_stores_nothing() -> None:
    runtime, queues = make_runtime()
    results = await intake_of(runtime).accept([message("Unknown")], reception_protocol="ESMTP")
    assert not results[0].ok
    assert "Unknown" in str(results[0].error)
    assert queues.inserted == []
    assert len(runtime.store.meta) == 0  # type: ignore[arg-type, union-attr]


async def test_each_message_of_a_batch_has_its_own_outcome() -> None:
    runtime, queues = make_runtime()
    results = await intake_of(runtime).accept(
        [message("TenantOne"), message("Nope"), message("TenantOne")], reception_protocol="HTTP")
    assert [r.ok for r in results] == [True, False, True]
    assert len(queues.inserted) == 2


async def test_null_queue_discards_without_storing() -> None:
    runtime, queues = make_runtime()
    results = await intake_of(runtime).accept([message(queue="null")], reception_protocol="ESMTP")
    assert results[0].ok and results[0].discarded
    assert queues.inserted == []
    assert len(runtime.store.meta) == 0  # type: ignore[arg-type, union-attr]


async def test_all_or_nothing_stores_nothing_when_any_message_is_refused() -> None:
    runtime, queues = make_runtime()
    results = await intake_of(runtime).accept(
        [message("TenantOne"), message("Nope")], reception_protocol="ESMTP", all_or_nothing=True)
    assert [r.ok for r in results] == [False, False]
    assert queues.inserted == []
    assert len(runtime.store.meta) == 0  # type: ignore[arg-type, union-attr]


class BrokenSpool(MemorySpool):
    async def put(self, key: str, value: bytes) -> None:
        raise OSError("disk on fire")


async def test_spool_failure_of_a_single_message_is_its_outcome_not_an_exception() -> None:
    # One message is awaited directly rather than through gather: its failure must still
    # come back as that message's result.
    runtime, queues = make_runtime(MessageStore(BrokenSpool("data"), MemorySpool("meta")))
    results = await intake_of(runtime).accept([message("TenantOne")], reception_protocol="ESMTP")
    assert not results[0].ok
    assert isinstance(results[0].error, OSError)
    assert queues.inserted == []


async def test_spool_failure_in_a_batch_fails_only_the_messages_it_hit() -> None:
    runtime, queues = make_runtime(MessageStore(BrokenSpool("data"), MemorySpool("meta")))
    results = await intake_of(runtime).accept(
        [message("TenantOne"), message("Nope")], reception_protocol="HTTP")
    assert isinstance(results[0].error, OSError)
    assert not results[1].ok and not isinstance(results[1].error, OSError)
    assert queues.inserted == []
