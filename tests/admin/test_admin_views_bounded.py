"""The admin views and ``/metrics`` of a big node: bounded answers, computed in steps that
leave the event loop to the node's other clients, and the same numbers as computing them
at once; rule creation bounded; the workers' answers merged in linear time."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest

from kumocore.admin import (
    latency_metrics,
    queue_rules,
    ready_q,
    routes,
    sched_q,
    series_cap,
)
from kumocore.admin.merge import merge_statuses, merge_summaries
from kumocore.config import QueueConfig
from kumocore.mail.message import Message
from kumocore.node import latency
from kumocore.queue.manager import QueueManager
from kumocore.testing.node import Node
from kumocore.testing.plugin import MakeNode
from tests.support.ticker import LoopTicker

SUMMARY = "/api/admin/queue-summary/v1"
SCHED_Q = "/api/admin/inspect-sched-q/v1"
CONFIG = QueueConfig.from_options({"egress_pool": "nowhere"})


def _insert(manager: QueueManager, recipient: str, *, created: float | None = None,
            data: bytes = b"Subject: x\r\n\r\nx\r\n") -> Message:  # fmt: skip
    message = Message("s@src.test", recipient, data, due=time.time() + 3600)
    if created is not None:
        message.created = created
    manager.insert(message, message.queue_name(), CONFIG)
    return message


def _manager(node: Node) -> QueueManager:
    services = node.runtime.services
    assert services is not None
    return services.queues


# ------------------------------------------------------------------ the series cap
def _reference(values: dict[Any, float], cap: int, other: Any, by_value: bool) -> list[Any]:
    """The cap as defined, computed the plain way."""
    items = list(values.items())
    if len(items) <= cap:
        return items
    # sorted() is stable: of equal values, the first series is kept.
    kept = sorted(items, key=lambda item: -item[1])[: cap - 1] if by_value else items[: cap - 1]
    merged = dict(kept)
    merged[other] = merged.get(other, 0) + sum(v for k, v in items if k not in merged)
    return list(merged.items())


@pytest.mark.parametrize("by_value", [True, False])
def test_the_series_cap_in_steps_keeps_what_one_ranking_keeps(
    monkeypatch: pytest.MonkeyPatch, by_value: bool
) -> None:
    monkeypatch.setattr(series_cap, "CHUNK", 7)  # many steps, ties across them
    rng = random.Random(5)
    values: dict[Any, float] = {f"q{n}": rng.randrange(20) for n in range(300)}
    values["other"] = 3  # a series already named other absorbs the rest
    assert series_cap.capped(values, 40, "other", by_value=by_value) == \
        _reference(values, 40, "other", by_value)  # fmt: skip


def test_a_histogram_series_named_other_is_never_written_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past LabelledHistograms' bound, labels are observed as ``other``; past the scrape
    cap the rest is folded into ``other`` too: into the same series, as Prometheus
    refuses a scrape that repeats one."""
    timers = latency.LabelledHistograms(max_series=600)
    monkeypatch.setattr(latency_metrics, "USER_LATENCY", timers)
    for n in range(900):  # 300 past the bound: 'other' is the busiest label
        timers.observe(f"t{n}", 0.002)
    family = latency.histogram_family("user_lua_latency", "doc", label="label",
                                      series=timers.series, limit=500)  # fmt: skip
    seen = Counter((s.name, tuple(sorted(s.labels.items()))) for s in family.samples)
    assert max(seen.values()) == 1
    counts = {s.labels["label"]: s.value for s in family.samples
              if s.name == "user_lua_latency_count"}  # fmt: skip
    # 600 labels and 'other' (300 observations): 'other' and 498 labels are kept, the
    # other 102 labels are folded into the kept 'other'.
    assert len(timers.series) == 601 and timers.series["other"].count == 300
    assert len(counts) == 499 and sum(counts.values()) == 900
    assert counts["other"] == 300 + 102


# ------------------------------------------------------------------ queue summary
async def test_the_queue_summary_lists_the_busiest_queues_up_to_its_limit_and_counts_all(
    make_node: MakeNode, monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = await make_node(sink=False)
    manager = _manager(node)
    for n in range(10):
        for k in range(n + 1):
            _insert(manager, f"u{k}@d{n}.example")
    status, answer = await node.admin("GET", f"{SUMMARY}?limit=3")
    assert status == 200
    assert [e["name"] for e in answer["scheduled"]] == ["d9.example", "d8.example",
                                                        "d7.example"]  # fmt: skip
    assert answer["totals"]["scheduled_queues"] == 10 and answer["totals"]["scheduled"] == 55
    monkeypatch.setattr(routes, "MAX_LISTED", 4)  # a larger limit is lowered to it
    status, answer = await node.admin("GET", f"{SUMMARY}?limit=99999")
    assert status == 200 and len(answer["scheduled"]) == 4


@pytest.mark.serial  # a latency bound: measured on a machine not running other tests
async def test_the_queue_summary_of_100000_queues_leaves_the_loop_free(
    make_node: MakeNode,
) -> None:
    node = await make_node(sink=False)
    manager = _manager(node)
    for n in range(100_000):
        _insert(manager, f"u@d{n}.example")
    for k in range(3):  # the busiest one
        _insert(manager, f"v{k}@d7.example")
    async with LoopTicker() as ticker:
        await asyncio.sleep(0.01)
        status, answer = await node.admin("GET", f"{SUMMARY}?limit=10000")
    assert status == 200
    assert len(answer["scheduled"]) == 10_000 and answer["scheduled"][0]["name"] == "d7.example"
    assert answer["totals"]["scheduled_queues"] == 100_000
    # Before: every queue listed (13 MB), all at once: the loop stood still 0.6 s.
    assert ticker.longest < 0.1, f"the event loop stood still for {ticker.longest:.3f} s"


# ------------------------------------------------------------------ inspect-sched-q
@pytest.mark.serial  # a latency bound
async def test_inspecting_a_queue_of_100000_messages_lists_the_oldest_without_stalling(
    make_node: MakeNode,
) -> None:
    node = await make_node(sink=False)
    manager = _manager(node)
    now = time.time()
    for n in range(100_000):
        _insert(manager, f"u{n}@big.example", created=now - (n * 7919) % 100_000)
    async with LoopTicker() as ticker:
        await asyncio.sleep(0.01)
        status, view = await node.admin("GET", f"{SCHED_Q}?queue_name=big.example")
    assert status == 200 and view["num_scheduled"] == 100_000
    created = [entry["message"]["created"] for entry in view["messages"]]
    assert len(created) == sched_q.MAX_MESSAGES and created == sorted(created)
    # Before: all 100,000 (24 MB), sorted and written at once: a 1.25 s stall.
    assert ticker.longest < 0.1, f"the event loop stood still for {ticker.longest:.3f} s"


async def test_bodies_of_an_inspected_queue_stop_at_the_body_budget(
    make_node: MakeNode, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sched_q, "BODY_BUDGET", 250)
    node = await make_node(sink=False)
    manager = _manager(node)
    for n in range(5):
        _insert(manager, f"u{n}@bodies.example", data=b"Subject: x\r\n\r\n" + b"b" * 86)
    status, view = await node.admin("GET", f"{SCHED_Q}?queue_name=bodies.example&want_body=true")
    assert status == 200 and len(view["messages"]) == 5
    bodies = [entry["message"].get("data") for entry in view["messages"]]
    assert [b is not None for b in bodies] == [True, True, False, False, False]


# ------------------------------------------------------------------ status and rules
@pytest.mark.serial  # a latency bound
async def test_the_status_of_a_node_with_thousands_of_suspensions_leaves_the_loop_free(
    make_node: MakeNode,
) -> None:
    node = await make_node(sink=False)
    manager = _manager(node)
    for n in range(500):
        _insert(manager, f"u@d{n}.example")
    async with aiohttp.ClientSession() as session:
        for n in range(1000):
            async with session.post(node.http_url + "/api/admin/suspend/v1", json={
                    "reason": "r", "domain": f"d{n}.example", "duration": "1h"}) as response:
                assert response.status == 200
    async with LoopTicker() as ticker:
        await asyncio.sleep(0.01)
        status, answer = await node.admin("GET", "/api/admin/status/v1")
    assert status == 200
    held = [e for e in answer["queues"]["scheduled"] if e["suspended_until"] is not None]
    assert len(held) == 500
    # Before: each listed queue asked every suspension: 500 x 1,000, a 1.5 s stall.
    assert ticker.longest < 0.2, f"the event loop stood still for {ticker.longest:.3f} s"


@pytest.mark.parametrize("kind", ["bounce", "suspend"])
async def test_rules_past_their_count_or_queue_names_bound_are_refused_with_429(
    make_node: MakeNode, monkeypatch: pytest.MonkeyPatch, kind: str,
) -> None:
    monkeypatch.setattr(queue_rules, "MAX_RULES", 2)
    monkeypatch.setattr(queue_rules, "MAX_RULE_NAMES", 5)
    node = await make_node(sink=False)
    path = f"/api/admin/{kind}/v1"
    rule = {"reason": "r", "duration": "1h"}
    status, answer = await node.admin("POST", path, {**rule, "queue_names": list("abcdef")})
    assert status == 429 and "more than 5" in answer["error"]
    for domain in ("a.example", "b.example"):
        status, answer = await node.admin("POST", path, {**rule, "domain": domain})
        assert status == 200, answer
    status, answer = await node.admin("POST", path, {**rule, "domain": "c.example"})
    assert status == 429 and "too many active" in answer["error"]
    _, listed = await node.admin("GET", path)
    status, _ = await node.admin("DELETE", path, {"id": listed[0]["id"]})  # room again
    assert status == 200
    status, answer = await node.admin("POST", path, {**rule, "domain": "c.example"})
    assert status == 200, answer


async def test_ready_queue_suspensions_past_their_bound_are_refused_with_429(
    make_node: MakeNode, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ready_q, "MAX_READY_HOLDS", 2)
    node = await make_node(sink=False)
    path = "/api/admin/suspend-ready-q/v1"
    for name in ("a->x@smtp_client", "b->x@smtp_client"):
        status, answer = await node.admin("POST", path, {"name": name, "reason": "r"})
        assert status == 200, answer
    status, answer = await node.admin("POST", path, {"name": "c->x@smtp_client", "reason": "r"})
    assert status == 429 and "too many suspended ready queues" in answer["error"]
    # A queue already held may be held anew (its suspension replaced).
    status, answer = await node.admin("POST", path, {"name": "a->x@smtp_client", "reason": "s"})
    assert status == 200, answer


# ------------------------------------------------------------------ workers' answers
def _worker_summary(names: list[str], total: int) -> dict[str, Any]:
    return {"scheduled": [{"name": n, "count": 2, "egress_pool": "p", "oldest_age": 1.0,
                           "site": None} for n in names],
            "ready": [],
            "totals": {"messages": 2 * total, "scheduled": 2 * total, "ready": 0,
                       "connections": 0, "scheduled_queues": total, "ready_queues": 0}}


def test_merged_summaries_of_shortened_lists_keep_their_length_and_count_every_queue() -> None:
    merged = merge_summaries([_worker_summary(["a", "b"], total=5),
                              _worker_summary(["c", "d"], total=4)])  # fmt: skip
    assert len(merged["scheduled"]) == 2  # as long as each worker's list
    assert merged["totals"]["scheduled_queues"] == 5  # at least the most any worker has
    whole = merge_summaries([_worker_summary(["a", "b"], 2), _worker_summary(["b", "c"], 2)])
    assert [e["name"] for e in whole["scheduled"]] == ["b", "a", "c"]
    assert whole["totals"]["scheduled_queues"] == 3


def _worker_status(queues: int) -> dict[str, Any]:
    entries = [{"name": f"d{n}.example", "count": 1, "egress_pool": "p", "oldest_age": 2.0,
                "site": None, "suspended_until": None} for n in range(queues)]
    return {"workers": 1, "counters": {"received": 1}, "queues": {
        "scheduled": entries, "ready": [],
        "totals": {"messages": queues, "scheduled": queues, "ready": 0, "connections": 0,
                   "scheduled_queues": queues, "ready_queues": 0}},
        "suspensions": [], "bounces": [], "automation": [],
        "recent": {"minutes": 5, "responses": [], "bounce_classes": {}},
        "node": {"log_sinks": {}}}


def test_merging_the_workers_statuses_takes_time_in_proportion_to_their_queues() -> None:
    statuses = [json.loads(json.dumps(_worker_status(5000))) for _ in range(2)]
    started = time.perf_counter()
    merged = merge_statuses(statuses)
    took = time.perf_counter() - started
    assert len(merged["queues"]["scheduled"]) == 5000
    assert merged["queues"]["scheduled"][0]["oldest_age"] == 2.0
    # Before: each queue searched every worker's list, 2,000 queues took 0.58 s, 5,000 3.6 s.
    assert took < 0.5, f"merging took {took:.2f} s"
