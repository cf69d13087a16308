"""inspect-message/v1, queue-summary/v1 and the OpenAPI path items."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from kumocore.admin.openapi import admin_openapi_paths
from kumocore.admin.summary import format_summary
from kumocore.node.runtime import Runtime
from tests.admin.conftest import NOWHERE_POOL, Enqueue, make_ready

INSPECT = "/api/admin/inspect-message/v1"
SUMMARY = "/api/admin/queue-summary/v1"


async def test_inspect_returns_envelope_meta_and_schedule_without_body_by_default(
    client: Any, enqueue: Enqueue
) -> None:
    message = enqueue("bob@example.com", tenant="acme")

    response = await client.get(INSPECT, params={"id": message.id})

    assert response.status == 200
    body = await response.json()
    assert body["id"] == message.id
    shown = body["message"]
    assert shown["sender"] == "sender@example.org"
    assert shown["recipient"] == "bob@example.com"
    assert shown["meta"] == {"tenant": "acme"}
    assert shown["num_attempts"] == 0
    assert "data" not in shown
    due = datetime.fromisoformat(shown["due"]).timestamp()
    assert abs(due - message.due) < 1


async def test_inspect_want_body_loads_a_released_body_from_the_spool(
    runtime: Runtime, client: Any, enqueue: Enqueue
) -> None:
    message = enqueue(data=b"Subject: spooled\r\n\r\nbody \xff\r\n")
    await runtime.services.store.save(message)
    message.release_data()  # as after a transient failure: the body lives on disk only

    body = await (await client.get(INSPECT, params={"id": message.id, "want_body": "true"})).json()

    assert body["message"]["data"] == "Subject: spooled\r\n\r\nbody \ufffd\r\n"


async def test_inspect_unknown_id_is_404_and_missing_id_is_400(client: Any) -> None:
    unknown = await client.get(INSPECT, params={"id": "0" * 32})
    assert unknown.status == 404
    assert "0" * 32 in (await unknown.json())["error"]
    missing = await client.get(INSPECT)
    assert missing.status == 400
    assert "'id'" in (await missing.json())["error"]


async def test_queue_summary_counts_scheduled_and_ready_queues(
    runtime: Runtime, client: Any, enqueue: Enqueue
) -> None:
    for n in range(3):
        enqueue(f"u{n}@example.com")
    enqueue("v@other.example", campaign="c1", tenant="t1")
    routed = [enqueue(f"r{n}@example.com") for n in range(2)]
    ready = make_ready(runtime.services.queues, routed)
    ready.connections = 1  # as if one connection were open

    summary = await (await client.get(SUMMARY)).json()

    # "site" is found in the background (tests/admin/test_provider_queued_metrics.py).
    assert [{k: v for k, v in e.items() if k not in ("oldest_age", "site")}
            for e in summary["scheduled"]] == [
        {"name": "example.com", "count": 3, "egress_pool": NOWHERE_POOL},
        {"name": "c1:t1@other.example", "count": 1, "egress_pool": NOWHERE_POOL},
    ]
    assert all(0 <= e["oldest_age"] < 60 for e in summary["scheduled"])
    assert summary["ready"] == [
        {
            "name": "src1->mx.example.com@smtp_client",
            "source": "src1",
            "site": "mx.example.com",
            "count": 2,
            "connections": 1,
            "connection_limit": 7,
            "max_message_rate": None,
            "delivered": 0,
            "transient": 0,
            "failed": 0,
            "last_error": None,
        }
    ]
    assert summary["totals"] == {
        "messages": 6,
        "scheduled": 4,
        "ready": 2,
        "connections": 1,
        "scheduled_queues": 2,
        "ready_queues": 1,
    }
    ready.connections = 0


def test_summary_table_lists_ready_then_scheduled_queues_with_totals() -> None:
    text = format_summary(
        {
            "scheduled": [{"name": "example.com", "count": 12, "egress_pool": "pool-a"}],
            "ready": [
                {
                    "name": "s->mx@smtp_client",
                    "source": "s",
                    "site": "mx",
                    "count": 3,
                    "connections": 2,
                    "connection_limit": 10,
                }
            ],
            "totals": {"messages": 15, "scheduled": 12, "ready": 3, "connections": 2},
        }
    )
    lines = text.splitlines()
    assert lines[0].split() == ["READY", "QUEUE", "COUNT", "CONNS", "DELIV", "TEMP", "FAIL",
                                "LAST", "ERROR"]
    assert lines[1].split() == ["s->mx@smtp_client", "3", "2/10", "0", "0", "0"]
    assert lines[3].split() == ["SCHEDULED", "QUEUE", "COUNT", "OLDEST", "POOL"]
    assert lines[4].split() == ["example.com", "12", "0s", "pool-a"]
    assert lines[-1] == "15 messages: 12 scheduled, 3 ready, 2 connections"


def test_openapi_paths_cover_every_admin_route_and_method(client: Any) -> None:
    paths = admin_openapi_paths()
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in client.app.router.routes()
        if r.method != "HEAD"
    }
    documented = {(method, path) for path, item in paths.items() for method in item}
    assert documented == routes
    for item in paths.values():
        for operation in item.values():
            # A WebSocket (the trace endpoints) answers 101 instead.
            assert {"200", "101"} & set(operation["responses"])
    # Each call hands out a fresh copy, so a caller's merge cannot corrupt the next one.
    paths["/metrics"]["get"]["summary"] = "changed"
    assert admin_openapi_paths()["/metrics"]["get"]["summary"] != "changed"


async def test_summary_is_fast_enough_for_a_large_queue(
    runtime: Runtime, client: Any, enqueue: Enqueue
) -> None:
    for n in range(5000):
        enqueue(f"u{n}@d{n % 50}.example")
    started = time.perf_counter()
    summary = await (await client.get(SUMMARY)).json()
    assert time.perf_counter() - started < 2.0
    assert summary["totals"]["scheduled"] == 5000
    assert len(summary["scheduled"]) == 50
