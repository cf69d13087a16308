"""``deferred_queue = true``: the client gets its 250 before the policy looks at the
message; ``smtp_server_message_deferred_inject`` then runs from the
``deferred_smtp_inject.kumomta.internal`` queue (KumoMTA's ``DeferredSmtpInjection``).

A real node (its listener, spool, queues and log records), clients bound to 127.0.0.5
(untrusted: the listener relays only to ``example.com``), the recording sink, and a
Python policy object whose handler is held on a gate.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from kumocore import Message, Rejection
from kumocore.config import EgressPathConfig
from kumocore.hookspecs import hookimpl
from kumocore.queue.deferred_inject import DEFERRED_QUEUE_NAME
from kumocore.testing.node import Node

pytestmark = pytest.mark.slow

READY_QUEUE = "unspecified->deferred_smtp_inject.kumomta.internal@defersmtpinject"
CLIENT = "127.0.0.5"
LISTENER = {"deferred_queue": True, "domains": {"example.com": {"relay_to": True}}}


class Policy:
    """The handler, held on ``gate``; counts what ran and how many ran at once."""

    def __init__(self, connection_limit: int | None = None) -> None:
        self.gate = asyncio.Event()
        self.started: list[str] = []
        self.received: list[str] = []
        self.conn_meta: list[dict[str, Any]] = []
        self.running = self.most = 0
        self.fail: list[BaseException] = []  # raised by the next runs, in order
        self.connection_limit = connection_limit

    @hookimpl
    async def kumo_smtp_server_message_deferred_inject(
        self, message: Message, conn_meta: dict[str, Any]
    ) -> None:
        self.started.append(message.id)
        self.conn_meta.append(dict(conn_meta))
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        if self.fail:
            raise self.fail.pop(0)
        message.set_meta("tenant", "deferred")
        message.append_header("X-Deferred", "handled")
        conn_meta["x_not_kept"] = "changed"

    @hookimpl
    def kumo_smtp_server_message_received(self, message: Message) -> None:
        self.received.append(message.id)

    @hookimpl
    def kumo_get_egress_path_config(self, domain: str) -> EgressPathConfig | None:
        if domain != DEFERRED_QUEUE_NAME or self.connection_limit is None:
            return None  # the node's path to the sink
        return EgressPathConfig.from_options({"connection_limit": self.connection_limit})


async def start(make_node: Any, policy: Policy, **listener: Any) -> Node:
    node: Node = await make_node(plugins=[policy], esmtp={**LISTENER, **listener})
    return node


async def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_client_gets_250_before_the_handler_runs_and_its_changes_are_delivered(
    make_node: Any,
) -> None:
    policy = Policy()
    node = await start(make_node, policy)
    refused = await node.send(recipients="rcpt@example.com", source_address=CLIENT)
    assert refused == {}  # 250 to DATA while nothing was decided yet
    await until(lambda: policy.started)
    assert policy.received == []  # smtp_server_message_received is not run
    (reception,) = await node.wait_for("Reception")
    assert reception["queue"] == DEFERRED_QUEUE_NAME
    assert node.sink is not None and node.sink.messages == []
    # The message waits, spooled, in the deferred queue while the handler runs.
    queues = node.runtime.services.queues  # type: ignore[union-attr]
    assert queues.queue_of(queues.messages[reception["id"]]).name == DEFERRED_QUEUE_NAME

    policy.gate.set()
    (rebind,) = await node.wait_for("DeferredInjectionRebind")
    (delivered,) = await node.wait_for("Delivery")
    assert rebind["id"] == delivered["id"] == reception["id"]
    assert rebind["queue"] == delivered["queue"] == "deferred@example.com"  # tenant applied
    assert rebind["site"] == READY_QUEUE
    assert rebind["response"]["code"] == 250 and rebind["response"]["content"] == "ok"
    assert rebind["delivery_protocol"] == "DeferredSmtpInjection"
    assert (rebind["egress_pool"], rebind["egress_source"], rebind["peer_address"]) == (
        None, None, None)  # fmt: skip
    assert rebind["meta"]["tenant"] == "deferred"
    assert "queue" not in rebind["meta"] and "x_not_kept" not in rebind["meta"]
    # The connection meta was made from the message's meta (what the session had).
    assert policy.conn_meta[0]["received_from"].startswith(CLIENT)
    (data,) = [m.data for m in node.sink.messages]
    assert b"X-Deferred: handled\r\n" in data
    assert b"Received: from " in data and b"X-KumoRef: " in data  # trace headers, as usual
    assert not node.runtime.services.queues.messages  # type: ignore[union-attr]


async def test_a_5xx_rejection_bounces_the_message_and_removes_it(make_node: Any) -> None:
    policy = Policy()
    policy.fail.append(Rejection(550, "5.7.1 not from this injector"))
    policy.gate.set()
    node = await start(make_node, policy)
    await node.send(recipients="rcpt@example.com", source_address=CLIENT)
    (bounce,) = await node.wait_for("Bounce")
    assert bounce["response"]["code"] == 550
    # As KumoMTA: the rejection's text as it is, no enhanced code taken out of it.
    assert bounce["response"]["content"] == "5.7.1 not from this injector"
    assert bounce["response"]["enhanced_code"] is None
    assert bounce["site"] == READY_QUEUE and bounce["egress_pool"] is None
    assert bounce["delivery_protocol"] == "DeferredSmtpInjection"
    await until(lambda: not node.runtime.services.queues.messages)  # type: ignore[union-attr]
    store = node.runtime.services.store  # type: ignore[union-attr]
    assert await store.load_data(bounce["id"]) is None  # gone from the spool
    assert node.logs("DeferredInjectionRebind", "Delivery") == []


async def test_an_error_is_a_transient_failure_retried_a_minute_later_then_rebound(
    make_node: Any,
) -> None:
    policy = Policy()
    policy.fail.append(RuntimeError("policy database unreachable"))
    policy.gate.set()
    node = await start(make_node, policy)
    await node.send(recipients="rcpt@example.com", source_address=CLIENT)
    (failure,) = await node.wait_for("TransientFailure")
    assert failure["response"]["code"] == 450
    assert "policy database unreachable" in failure["response"]["content"]
    assert failure["queue"] == DEFERRED_QUEUE_NAME and failure["site"] == READY_QUEUE
    assert failure["delivery_protocol"] == "DeferredSmtpInjection"
    queues = node.runtime.services.queues  # type: ignore[union-attr]
    await until(lambda: queues.scheduler.due_time(failure["id"]) is not None)
    message = queues.messages[failure["id"]]
    assert message.num_attempts == 1 and message.meta["queue"] == DEFERRED_QUEUE_NAME
    # KumoMTA's hard-coded base interval: a minute (with the queue's small jitter).
    wait = queues.scheduler.due_time(failure["id"]) - time.time()
    assert 50 < wait < 65, wait
    assert node.sink is not None and node.sink.messages == []
    # Retried now rather than in a minute: the operator's flush (a rebind of the queue).
    status, answer = await node.admin("POST", "/api/admin/rebind/v1", {
        "domain": DEFERRED_QUEUE_NAME, "reason": "retry now", "always_flush": True,
        "data": {}})  # fmt: skip
    assert status == 200, answer
    (rebind,) = await node.wait_for("DeferredInjectionRebind")
    assert rebind["queue"] == "deferred@example.com" and rebind["num_attempts"] == 1
    await node.wait_for("Delivery")
    assert len(policy.started) == 2


async def test_a_4xx_rejection_is_a_transient_failure_with_its_code_and_text(
    make_node: Any,
) -> None:
    policy = Policy()
    policy.fail.append(Rejection(451, "4.7.1 try again"))
    policy.gate.set()
    node = await start(make_node, policy)
    await node.send(recipients="rcpt@example.com", source_address=CLIENT)
    (failure,) = await node.wait_for("TransientFailure")
    assert (failure["response"]["code"], failure["response"]["content"]) == (451, "4.7.1 try again")
    assert node.logs("Bounce") == []


async def test_handler_runs_are_bounded_by_the_deferred_paths_connection_limit(
    make_node: Any,
) -> None:
    policy = Policy(connection_limit=2)
    node = await start(make_node, policy)
    for i in range(6):  # past the limit
        await node.send(recipients=f"r{i}@example.com", source_address=CLIENT)
    await node.wait_for("Reception", count=6)  # every client had its 250 already
    await until(lambda: len(policy.started) == 2)
    await asyncio.sleep(0.5)  # the others stay queued while both slots are busy
    assert (len(policy.started), policy.most) == (2, 2)
    path = next(p for p in node.runtime.services.queues.paths.values()  # type: ignore[union-attr]
                if p.key.name == READY_QUEUE)  # fmt: skip
    assert len(path) == 4 and path.connections == 2
    policy.gate.set()
    await node.wait_for("Delivery", count=6)
    assert policy.most == 2 and len(policy.started) == 6


async def test_the_option_applies_per_peer_block(make_node: Any) -> None:
    policy = Policy()
    policy.gate.set()
    node = await start(make_node, policy, deferred_queue=False,
                       peer={"127.0.0.5/32": {"deferred_queue": True}})  # fmt: skip
    await node.send(recipients="deferred@example.com", source_address=CLIENT)
    await node.send(recipients="direct@example.com", source_address="127.0.0.6")
    await node.wait_for("Delivery", count=2)
    queues = {r["recipient"]: r["queue"] for r in await node.wait_for("Reception", count=2)}
    assert queues == {"deferred@example.com": DEFERRED_QUEUE_NAME,
                      "direct@example.com": "example.com"}  # fmt: skip
    assert len(policy.started) == 1 and len(policy.received) == 1


class Dynamic:
    """``smtp_server_get_dynamic_parameters``: deferred for 127.0.0.5 only."""

    @hookimpl
    def kumo_smtp_server_get_dynamic_parameters(
        self, conn_meta: dict[str, Any]
    ) -> dict[str, Any] | None:
        if str(conn_meta.get("received_from", "")).startswith(CLIENT + ":"):
            return {"deferred_queue": True}
        return None


async def test_the_option_applies_when_the_dynamic_parameters_set_it(make_node: Any) -> None:
    policy = Policy()
    policy.gate.set()
    node = await make_node(plugins=[policy, Dynamic()], esmtp={**LISTENER, "deferred_queue": False})
    await node.send(recipients="deferred@example.com", source_address=CLIENT)
    await node.send(recipients="direct@example.com", source_address="127.0.0.6")
    await node.wait_for("Delivery", count=2)
    queues = {r["recipient"]: r["queue"] for r in await node.wait_for("Reception", count=2)}
    assert queues == {"deferred@example.com": DEFERRED_QUEUE_NAME,
                      "direct@example.com": "example.com"}  # fmt: skip
    assert len(policy.started) == 1 and len(policy.received) == 1


async def test_a_stop_during_the_handler_keeps_the_message_for_the_next_start(
    make_node: Any, tmp_path: Any
) -> None:
    policy = Policy()
    first = await make_node(plugins=[policy], esmtp=LISTENER, spool="rocksdb", tmp_path=tmp_path)
    await first.send(recipients="rcpt@example.com", source_address=CLIENT)
    await until(lambda: policy.started)
    await first.stop()
    await asyncio.sleep(0.3)
    assert len(policy.started) == 1  # not run again by a node that is stopping
    again = Policy()
    again.gate.set()
    second = await make_node(plugins=[again], esmtp=LISTENER, spool="rocksdb", tmp_path=tmp_path)
    (rebind,) = await second.wait_for("DeferredInjectionRebind")
    assert rebind["id"] == policy.started[0] and rebind["queue"] == "deferred@example.com"
    await second.wait_for("Delivery")
