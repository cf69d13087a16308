"""``redis_operation_latency``'s process-wide histograms (kumocore.node.redis_latency): the
public entry points plugins use, KumoMTA's service label shape and the series bound."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

import kumocore
from kumocore.node import redis_latency
from kumocore.node.redis_latency import REDIS_LATENCY, redis_latency_family


@pytest.fixture
def empty() -> Iterator[None]:
    """The process's series set aside for the test, and put back after it."""
    saved = dict(REDIS_LATENCY)
    REDIS_LATENCY.clear()
    yield
    REDIS_LATENCY.clear()
    REDIS_LATENCY.update(saved)


def test_plugins_record_through_the_public_api_by_service_operation_and_status(
    empty: None,
) -> None:
    kumocore.observe_redis_latency("svc", "script", True, 0.002)
    kumocore.observe_redis_latency("svc", "script", False, 0.5)
    kumocore.observe_redis_latency("svc", "script", True, 0.004)
    family = redis_latency_family()
    got = {(s.labels["service"], s.labels["operation"], s.labels["status"]): s.value
           for s in family.samples if s.name == "redis_operation_latency_count"}
    assert got == {("svc", "script", "ok"): 2, ("svc", "script", "error"): 1}
    assert family.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in family.samples
               if s.name == "redis_operation_latency_bucket" and s.labels["status"] == "ok"}
    assert buckets["0.005"] == 2 and buckets["+Inf"] == 2


def test_new_series_past_the_bound_are_recorded_under_service_other(
    empty: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_latency, "MAX_SERIES", 2)
    for service in ("a", "b", "c", "d"):
        kumocore.observe_redis_latency(service, "query", True, 0.001)
    kumocore.observe_redis_latency("a", "query", True, 0.001)  # an existing one: kept
    assert {key: h.count for key, h in REDIS_LATENCY.items()} == {
        ("a", "query", "ok"): 2, ("b", "query", "ok"): 1, ("other", "query", "ok"): 2}


def test_the_service_label_is_kumomtas_nodes_and_checksum_without_a_password() -> None:
    label = kumocore.redis_service_label(["redis://:secret@10.0.0.1:6379/0"], "app")
    assert re.fullmatch(r"app@redis://:\*\*\*@10\.0\.0\.1:6379/0-[0-9a-f]{8}", label)
    assert "secret" not in label
    cluster = kumocore.redis_service_label(["redis://a:1", "redis://b:2"])
    assert cluster.rpartition("-")[0] == "redis://a:1,redis://b:2"
    # Same nodes, other settings: another suffix; the same ones: the same label.
    assert kumocore.redis_service_label(["redis://a:1"], settings=(1,)) != \
        kumocore.redis_service_label(["redis://a:1"], settings=(2,))
    assert kumocore.redis_service_label(["redis://a:1"]) == \
        kumocore.redis_service_label(("redis://a:1",))
