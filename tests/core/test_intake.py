"""Intake: queue config is resolved before acknowledgement; durable before queued.

Each test runs the started node's own intake (kumocore.testing) with real queues behind
it; what was queued, and with which config, is read back from the node's log records.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from kumocore import hookimpl
from kumocore.config import QueueConfig
from kumocore.mail.message import Message
from kumocore.reception.intake import Intake
from kumocore.spool.base import MemorySpool
from kumocore.testing import Node
from kumocore.testing.plugin import MakeNode


class TenantPolicy:
    """Like the reference policy: only known tenants have a queue config. The egress pool
    is not defined, so a queued message fails routing (451) and, past its max_age, expires:
    both records name the queue and the config it got."""

    @hookimpl
    def kumo_get_queue_config(self, tenant: str | None) -> Any:
        if tenant != "TenantOne":
            raise KeyError(f"no params for tenant {tenant!r}")
        return QueueConfig.from_options({"egress_pool": "TenantOne", "max_age": "5 minutes"})


class BrokenSpool(MemorySpool):
    async def put(self, key: str, value: bytes) -> None:
        raise OSError("disk on fire")


class BrokenDataSpool:
    """Provides ``kind = 'broken'`` and defines the data spool with it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @hookimpl
    def kumo_register_spool_kinds(self) -> dict[str, Any]:
        return {"broken": lambda name, **_: BrokenSpool(name)}

    @hookimpl
    def kumo_init(self, kumo: Any) -> None:
        kumo.define_spool(name="data", path=str(self.path), kind="broken")


def message(tenant: str | None = None, **meta: Any) -> Message:
    msg = Message("a@sender.test", "b@example.com", b"Subject: x\r\n\r\nbody\r\n", meta=meta)
    if tenant:
        msg.set_meta("tenant", tenant)
    return msg


@pytest.fixture
async def node(make_node: MakeNode) -> Node:
    return await make_node(plugins=[TenantPolicy()], entrypoints=False, listen=False)


def intake(node: Node) -> Intake:
    assert node.runtime.services.intake is not None
    return node.runtime.services.intake


async def logged(node: Node, *types: str) -> list[dict[str, Any]]:
    """The records of ``types`` once the dispatcher had time to write (a check that none
    came must not pass just because none arrived yet)."""
    await asyncio.sleep(0.1)
    return node.logs(*types)


def spooled(node: Node) -> int:
    assert node.runtime.services.store is not None
    return len(node.runtime.services.store.meta)  # type: ignore[arg-type]


async def test_accepted_message_is_spooled_then_queued_with_its_config(node: Node) -> None:
    accepted = await intake(node).accept([message("TenantOne")], reception_protocol="ESMTP")
    assert accepted[0].ok
    [received] = await node.wait_for("Reception", id=accepted[0].message.id)
    assert received["queue"] == "TenantOne@example.com"
    # Its config's pool is tried, and its max_age (5 minutes) ends it at the first retry.
    [failed] = await node.wait_for("TransientFailure")
    assert failed["egress_pool"] == "TenantOne" and failed["queue"] == "TenantOne@example.com"
    [expired] = await node.wait_for("Expiration")
    assert "max_age" in expired["response"]["content"]


async def test_queue_config_error_refuses_the_message_and_stores_nothing(node: Node) -> None:
    results = await intake(node).accept([message("Unknown")], reception_protocol="ESMTP")
    assert not results[0].ok
    assert "Unknown" in str(results[0].error)
    assert spooled(node) == 0
    assert await logged(node, "Reception") == []


async def test_each_message_of_a_batch_has_its_own_outcome(node: Node) -> None:
    results = await intake(node).accept(
        [message("TenantOne"), message("Nope"), message("TenantOne")], reception_protocol="HTTP")
    assert [r.ok for r in results] == [True, False, True]
    received = await node.wait_for("Reception", count=2)
    assert {r["id"] for r in received} == {results[0].message.id, results[2].message.id}


async def test_null_queue_discards_without_storing(node: Node) -> None:
    results = await intake(node).accept([message(queue="null")], reception_protocol="ESMTP")
    assert results[0].ok and results[0].discarded
    assert spooled(node) == 0
    assert await logged(node, "TransientFailure", "Delivery", "Bounce") == []


async def test_all_or_nothing_stores_nothing_when_any_message_is_refused(node: Node) -> None:
    results = await intake(node).accept(
        [message("TenantOne"), message("Nope")], reception_protocol="ESMTP", all_or_nothing=True)
    assert [r.ok for r in results] == [False, False]
    assert spooled(node) == 0
    assert await logged(node, "Reception") == []


@pytest.fixture
async def broken(make_node: MakeNode, tmp_path: Path) -> Node:
    """A node whose data spool fails every write."""
    return await make_node(plugins=[TenantPolicy(), BrokenDataSpool(tmp_path / "data")],
                           entrypoints=False, listen=False)


async def test_spool_failure_of_a_single_message_is_its_outcome_not_an_exception(
    broken: Node,
) -> None:
    # One message is awaited directly rather than through gather: its failure must still
    # come back as that message's result.
    results = await intake(broken).accept([message("TenantOne")], reception_protocol="ESMTP")
    assert not results[0].ok
    assert isinstance(results[0].error, OSError)
    assert await logged(broken, "Reception") == []


async def test_spool_failure_in_a_batch_fails_only_the_messages_it_hit(broken: Node) -> None:
    results = await intake(broken).accept(
        [message("TenantOne"), message("Nope")], reception_protocol="HTTP")
    assert isinstance(results[0].error, OSError)
    assert not results[1].ok and not isinstance(results[1].error, OSError)
    assert await logged(broken, "Reception") == []
