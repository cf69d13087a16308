"""Admin bounce and suspension rules over HTTP (KumoMTA's bounce/v1 and suspend/v1)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from kumocore import ConfigError
from kumocore.node.runtime import Runtime
from kumocore.queue.admin import parse_rule
from tests.admin.conftest import Enqueue, make_ready

BOUNCE = "/api/admin/bounce/v1"
SUSPEND = "/api/admin/suspend/v1"


async def _wait_for(condition: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_bounce_removes_matching_scheduled_and_ready_messages_and_counts_them(
    runtime: Runtime, client: Any, enqueue: Enqueue
) -> None:
    scheduled = enqueue("a@example.com")
    ready_one = enqueue("b@example.com")
    other = enqueue("c@other.example")
    make_ready(runtime.services.queues, [ready_one])

    response = await client.post(BOUNCE, json={"domain": "example.com", "reason": "purge"})

    assert response.status == 200
    body = await response.json()
    assert body["bounced"] == {"example.com": 2}
    assert body["total_bounced"] == 2
    await runtime.services.queues.outcomes.drain()
    assert set(runtime.services.queues.messages) == {other.id}
    assert await runtime.services.store.meta.get(scheduled.id) is None
    assert runtime.services.queues.outcomes.counters["admin_bounced"] == 2


async def test_bounce_rule_is_listed_then_cancelled_and_a_second_cancel_is_404(client: Any) -> None:
    created = await (
        await client.post(BOUNCE, json={"tenant": "acme", "reason": "stop", "duration": "1h"})
    ).json()

    listing = await (await client.get(BOUNCE)).json()
    assert [entry["id"] for entry in listing] == [created["id"]]
    entry = listing[0]
    assert entry["tenant"] == "acme" and entry["reason"] == "stop"
    assert entry["domain"] is None and entry["total_bounced"] == 0
    assert 3590 <= int(entry["duration"].rstrip("s")) <= 3600

    cancelled = await client.delete(BOUNCE, json={"id": created["id"]})
    assert cancelled.status == 200 and await cancelled.json() == {"id": created["id"]}
    assert await (await client.get(BOUNCE)).json() == []
    again = await client.delete(BOUNCE, json={"id": created["id"]})
    assert again.status == 404
    assert created["id"] in (await again.json())["error"]


async def test_active_bounce_rule_bounces_messages_inserted_later(
    runtime: Runtime, client: Any, enqueue: Enqueue
) -> None:
    created = await (
        await client.post(BOUNCE, json={"campaign": "spring", "reason": "recalled"})
    ).json()

    enqueue("x@example.com", campaign="spring")

    listing = await (await client.get(BOUNCE)).json()
    assert listing[0]["id"] == created["id"] and listing[0]["total_bounced"] == 1
    await runtime.services.queues.outcomes.drain()
    assert runtime.services.queues.messages == {}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"domain": "example.com"}, "reason"),
        ({"reason": "x", "domian": "example.com"}, "domian"),
        ({"reason": "x", "duration": "soon"}, "duration"),
        ({"reason": "x", "queue_names": "example.com"}, "queue_names"),
        ([{"reason": "x"}], "JSON object"),
    ],
)
async def test_bad_rule_bodies_are_400_naming_the_problem(
    client: Any, body: Any, needle: str
) -> None:
    for path in (BOUNCE, SUSPEND):
        response = await client.post(path, json=body)
        assert response.status == 400
        assert needle in (await response.json())["error"]


async def test_malformed_json_and_missing_id_are_400(client: Any) -> None:
    response = await client.post(
        BOUNCE, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert "JSON" in (await response.json())["error"]
    for path in (BOUNCE, SUSPEND):
        response = await client.delete(path, json={})
        assert response.status == 400
        assert "'id'" in (await response.json())["error"]


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        # Overflowed to an infinite duration: not JSON, and the status page died of it.
        (b'{"reason": "r", "domain": "a.example", "duration": "1' + b"0" * 400 + b's"}',
         "at most 1e+10 seconds"),
        # A lone surrogate is not text: the status page could not encode it.
        (b'{"reason": "x\\ud800y", "domain": "a.example"}', "not valid JSON"),
        # json's RecursionError was a plain-text 500.
        (b'{"reason": ' + b"[" * 5000 + b"]" * 5000 + b"}", "not valid JSON"),
    ],
)
async def test_bodies_that_broke_the_status_page_or_the_handler_are_400(
    client: Any, raw: bytes, needle: str
) -> None:
    for path in (BOUNCE, SUSPEND):
        response = await client.post(
            path, data=raw, headers={"Content-Type": "application/json"})
        assert response.status == 400
        assert needle in (await response.json())["error"]
    listed = await client.get(SUSPEND)
    assert await listed.json() == []


async def test_suspension_defers_due_messages_on_their_retry_schedule_and_cancel_keeps_it(
    runtime: Runtime, client: Any, enqueue: Enqueue
) -> None:
    manager = runtime.services.queues
    response = await client.post(
        SUSPEND, json={"domain": "example.com", "reason": "warmup", "duration": "1h"}
    )
    assert response.status == 200
    rule_id = (await response.json())["id"]

    message = enqueue("a@example.com", due_in=None)  # due now: routing sees the suspension
    # As in KumoMTA: an attempt is counted and the message waits for its retry (default
    # retry_interval 20m, jitter within 30 s), not for the end of the suspension (1h).
    await _wait_for(lambda: message.num_attempts == 1
                    and manager.scheduler.due_time(message.id) is not None)  # fmt: skip
    due = manager.scheduler.due_time(message.id)
    assert due is not None and 1170 <= due - time.time() <= 1230

    listing = await (await client.get(SUSPEND)).json()
    assert listing == [
        {
            "id": rule_id,
            "campaign": None,
            "tenant": None,
            "domain": "example.com",
            "reason": "warmup",
            "duration": listing[0]["duration"],
        }
    ]

    cancelled = await client.delete(SUSPEND, json={"id": rule_id})
    assert cancelled.status == 200
    await asyncio.sleep(0.2)
    # Not woken by the cancel (KumoMTA's cancel only removes the rule): same retry time.
    assert manager.scheduler.due_time(message.id) == due
    assert message.num_attempts == 1
    assert await (await client.get(SUSPEND)).json() == []
    missing = await client.delete(SUSPEND, json={"id": rule_id})
    assert missing.status == 404


async def test_admin_endpoints_answer_503_before_the_queues_start(
    runtime: Runtime, client: Any
) -> None:
    services, runtime.services = runtime.services, None
    try:
        for method, path in (
            ("GET", BOUNCE),
            ("GET", SUSPEND),
            ("GET", "/api/admin/queue-summary/v1"),
        ):
            response = await client.request(method, path)
            assert response.status == 503
            assert "not started" in (await response.json())["error"]
    finally:
        runtime.services = services


def test_suppress_logging_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="suppress_logging"):
        parse_rule({"reason": "r", "suppress_logging": {"yes": 1}})


def test_a_bad_duration_is_refused_even_when_expires_overrides_it() -> None:
    with pytest.raises(ConfigError, match="duration"):
        parse_rule({"reason": "r", "duration": "soonish", "expires": "2030-01-01T00:00:00Z"})
