"""Queue tools over the admin API: list a scheduled queue, flush it, rebind messages."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from kumocore.node.runtime import Runtime
from tests.admin.conftest import Enqueue
from tests.support.admin_cli import run_cli


@pytest.fixture
def endpoint(client: Any) -> str:
    return str(client.make_url("")).rstrip("/")


async def test_inspect_sched_q_lists_a_queues_messages_with_their_due_time(
    client: Any, enqueue: Enqueue
) -> None:
    first, second = enqueue("a@example.com"), enqueue("b@example.com")
    enqueue("c@other.test")
    response = await client.get("/api/admin/inspect-sched-q/v1?queue_name=example.com")
    view = await response.json()
    assert response.status == 200
    assert view["num_scheduled"] == 2
    assert [m["id"] for m in view["messages"]] == [first.id, second.id]
    assert view["messages"][0]["message"]["recipient"] == "a@example.com"
    assert view["messages"][0]["message"]["due"] is not None
    limited = await (await client.get(
        "/api/admin/inspect-sched-q/v1?queue_name=example.com&limit=1")).json()
    assert len(limited["messages"]) == 1 and limited["num_scheduled"] == 2


async def test_inspect_sched_q_refuses_a_missing_queue_name_or_bad_limit(client: Any) -> None:
    assert (await client.get("/api/admin/inspect-sched-q/v1")).status == 400
    bad = await client.get("/api/admin/inspect-sched-q/v1?queue_name=x&limit=-1")
    assert bad.status == 400 and "limit" in (await bad.json())["error"]


@pytest.mark.parametrize("limit", ["%C2%B2", "9" * 5000])  # "²"; more digits than int reads
async def test_inspect_sched_q_answers_400_not_500_to_a_limit_int_cannot_read(
    client: Any, limit: str
) -> None:
    bad = await client.get(f"/api/admin/inspect-sched-q/v1?queue_name=x&limit={limit}")
    assert bad.status == 400 and "limit" in (await bad.json())["error"]


async def test_queue_list_prints_a_mailq_style_table(
    capsys: Any, endpoint: str, enqueue: Enqueue
) -> None:
    message = enqueue("a@example.com")
    code, out, err = await run_cli(capsys, "queue", "list", "example.com", "--endpoint", endpoint)
    assert code == 0, err
    header, row, footer = out.strip().splitlines()
    assert header.split() == ["ID", "AGE", "ATTEMPTS", "NEXT", "ATTEMPT", "SENDER", "RECIPIENT"]
    assert row.startswith(message.id) and "a@example.com" in row
    assert footer == "example.com: 1 waiting, 1 shown"


async def test_flush_makes_waiting_messages_due_now(
    capsys: Any, endpoint: str, runtime: Runtime, enqueue: Enqueue
) -> None:
    message = enqueue("a@example.com", due_in=3600)
    untouched = enqueue("b@other.test", due_in=3600)
    code, out, err = await run_cli(capsys, "queue", "flush", "--domain", "example.com",
                                   "--endpoint", endpoint)  # fmt: skip
    assert code == 0, err
    assert '"flushed": 1' in out
    # Due now, it is routed at once: its pool is not defined, so it fails and is retried.
    deadline = time.monotonic() + 5
    while message.num_attempts == 0:
        assert time.monotonic() < deadline, "the flushed message was never attempted"
        await asyncio.sleep(0.05)
    assert untouched.num_attempts == 0
    assert (runtime.services.queues.scheduler.due_time(untouched.id) or 0) > time.time() + 3000


async def test_flush_without_a_selector_needs_everything(capsys: Any, endpoint: str) -> None:
    code, _, err = await run_cli(capsys, "queue", "flush", "--endpoint", endpoint)
    assert code == 1 and "--everything" in err


async def test_rebind_moves_messages_to_the_queue_their_new_meta_names(
    client: Any, runtime: Runtime, enqueue: Enqueue
) -> None:
    message = enqueue("a@example.com", due_in=3600)
    response = await client.post("/api/admin/rebind/v1", json={
        "domain": "example.com", "reason": "via smarthost", "data": {"queue": "smarthost.test"}})
    assert response.status == 200
    assert await response.json() == {"moved": 1, "flushed": 0}
    queue = runtime.services.queues.queue_of(message)
    assert queue is not None and queue.name == "smarthost.test"
    # Due now in its new queue: its waiting count agrees with the scheduler's view.
    assert queue.waiting == (message.id in runtime.services.queues.scheduler)
    assert runtime.services.queues.scheduled["example.com"].ids == set()  # empty, not reaped yet
    assert message.meta["queue"] == "smarthost.test"
    assert runtime.services.store is not None
    recovered = [m async for m in runtime.services.store.recover()]  # what a restart would find
    assert [m.meta.get("queue") for m in recovered] == ["smarthost.test"]


async def test_rebind_refuses_a_non_boolean_event_flag_and_bad_data(client: Any) -> None:
    event = await client.post("/api/admin/rebind/v1", json={
        "reason": "x", "trigger_rebind_event": "yes"})
    assert event.status == 400 and "trigger_rebind_event" in (await event.json())["error"]
    bad = await client.post("/api/admin/rebind/v1", json={"reason": "x", "data": {"a": 1}})
    assert bad.status == 400 and "string" in (await bad.json())["error"]
