"""/metrics and /metrics.json: KumoMTA names, live values, per-runtime registries, caps."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from kumocore.admin import metrics
from kumocore.admin.metrics import reception_counter, registry_for, render_text
from kumocore.logs.dispatch import LogDispatcher
from kumocore.node.runtime import Runtime
from kumocore.policy.hookcall import HookTiming
from tests.admin.conftest import Enqueue, make_ready
from tests.support.wiring import wire


class DiscardSink:
    name = "audit"
    buffer_size = 1

    async def write_batch(self, records: Sequence[Any]) -> None:
        return None

    async def close(self) -> None:
        return None


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value}; the parser appends _total to counters."""
    return {
        (
            sample.name.removesuffix("_total") if family.type == "counter" else sample.name,
            tuple(sorted(sample.labels.items())),
        ): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_text_has_kumomta_names_and_live_queue_values(
    runtime: Runtime, client: Any, enqueue: Enqueue
) -> None:
    for n in range(3):
        enqueue(f"u{n}@example.com")
    ready = make_ready(runtime.services.queues, [enqueue("r@example.com")])
    ready.connections = 2
    outcomes = runtime.services.queues.outcomes
    outcomes.counters.update(delivered=5, transient=4, bounced=3, expired=2)
    # Two attempts over the ready path: KumoMTA's series, per protocol and per path.
    outcomes.provider_counts.count("Delivery", ready, "unspecified", 2)
    outcomes.provider_counts.count("TransientFailure", ready, "unspecified")
    assert runtime.services is not None
    reception_counter(runtime.services).add("ESMTP", 9)

    response = await client.get("/metrics")

    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = await response.text()
    # KumoMTA's counters keep their names and labels: no _total appended.
    service = "smtp_client:src1->mx.example.com@smtp_client"
    assert f'\ntotal_messages_delivered{{service="{service}"}} 2.0\n' in text
    assert '\ntotal_messages_delivered{service="smtp_client"} 2.0\n' in text
    assert "# TYPE total_messages_delivered counter\n" in text
    # Families without samples yet (no log sinks here) keep their names too.
    assert "# TYPE kumocore_log_sink_dropped_total counter\n" in text
    assert "_total_total" not in text
    assert "# TYPE process_cpu_seconds_total counter\n" in text
    values = _samples(text)
    assert values[("total_messages_received", (("service", "esmtp_listener"),))] == 9
    assert values[("total_messages_received", (("service", "http_listener"),))] == 0
    assert values[("total_messages_transfail", (("service", service),))] == 1
    assert ("total_messages_fail", (("service", "smtp_client"),)) not in values  # none yet
    # The node's own totals: every outcome record, with or without a path.
    assert values[("kumocore_messages_delivered", ())] == 5
    assert values[("kumocore_messages_transfail", ())] == 4
    assert values[("kumocore_messages_fail", ())] == 3
    assert values[("total_messages_expired", ())] == 2
    assert values[("scheduled_count", (("queue", "example.com"),))] == 3
    assert values[("ready_count", (("queue", "src1->mx.example.com@smtp_client"),))] == 1
    assert values[("connection_count", (("service", service),))] == 2
    assert values[("kumocore_messages_queued", ())] == 4
    assert ("process_cpu_seconds", ()) in values
    ready.connections = 0


async def test_metrics_report_hook_timings_log_drops_and_admin_rules(
    runtime: Runtime, client: Any, enqueue: Enqueue
) -> None:
    from kumocore.logs.record import RecordType
    from tests.core.logs.fakes import record

    logs = LogDispatcher([DiscardSink()])  # not started: its 1-record buffer fills
    assert runtime.services is not None and runtime.services.queues is not None
    runtime.services = dataclasses.replace(runtime.services, logs=logs)
    queues = runtime.services.queues
    queues.logs = queues.outcomes.logs = queues.journal.logs = logs  # the queues' records too
    for _ in range(3):  # rejection records over the bound are shed (and counted)
        logs.submit(record(RecordType.Rejection))
    for n in range(3):
        enqueue(f"u{n}@example.com")
    await client.post("/api/admin/bounce/v1", json={"domain": "example.com", "reason": "x"})
    await logs.start()  # AdminBounce records are never shed: they wait for room
    await runtime.services.queues.outcomes.drain()  # classified, submitted, written, unspooled

    values = _samples(await (await client.get("/metrics")).text())

    assert values[("kumocore_log_sink_shed", (("sink", "audit"),))] == 2
    assert values[("kumocore_log_sink_dropped", (("sink", "audit"),))] == 0
    assert values[("kumocore_log_sink_written", (("sink", "audit"),))] == 4
    calls = values[("kumocore_hook_calls", (("hook", "kumo_classify_bounce"),))]
    assert calls == 3
    # The time the hook caller measured for those three calls, exported as is.
    measured = runtime.hooks.caller.timings["kumo_classify_bounce"].seconds
    assert measured > 0
    assert values[("kumocore_hook_seconds", (("hook", "kumo_classify_bounce"),))] == measured
    assert values[("kumocore_admin_rules", (("kind", "bounce"),))] == 1
    assert values[("kumocore_messages_admin_bounced", ())] == 3


async def test_metrics_json_nests_labelled_values(
    runtime: Runtime, client: Any, enqueue: Enqueue
) -> None:
    enqueue("a@example.com")
    body = await (await client.get("/metrics.json")).json()
    assert body["scheduled_count"]["type"] == "gauge"
    assert body["scheduled_count"]["value"] == {"queue": {"example.com": 1}}
    assert body["kumocore_messages_delivered_total"]["value"] == 0
    assert body["kumocore_messages_delivered_total"]["type"] == "counter"


def test_each_node_has_its_own_registry() -> None:
    first, second = wire(Runtime(load_entrypoints=False)), wire(Runtime(load_entrypoints=False))
    reception_counter(first).add("HTTP")
    assert registry_for(first) is registry_for(first)
    assert registry_for(first) is not registry_for(second)
    assert 'total_messages_received{service="http_listener"} 1.0' in (
        render_text(registry_for(first)).decode()
    )
    assert 'total_messages_received{service="http_listener"} 0.0' in (
        render_text(registry_for(second)).decode()
    )


async def test_labelled_series_are_capped_with_an_other_bucket(
    runtime: Runtime, client: Any, enqueue: Enqueue, monkeypatch: Any
) -> None:
    monkeypatch.setattr(metrics, "MAX_SERIES", 5)
    for n in range(8):
        for _ in range(n + 1):  # queue dN holds N+1 messages
            enqueue(f"u@d{n}.example")
    for n in range(8):
        runtime.hooks.caller.timings[f"hook{n}"] = HookTiming(calls=1, seconds=0.1)

    values = _samples(await (await client.get("/metrics")).text())

    scheduled = {
        labels[0][1]: v for (name, labels), v in values.items() if name == "scheduled_count"
    }
    # Gauges keep the largest queues; the rest are summed under "other".
    assert scheduled == {
        "d7.example": 8,
        "d6.example": 7,
        "d5.example": 6,
        "d4.example": 5,
        "other": 1 + 2 + 3 + 4,
    }
    hooks = [labels[0][1] for (name, labels), _ in values.items() if name == "kumocore_hook_calls"]
    # Counters keep the first labels seen, so "other" only ever grows.
    assert hooks[:4] == [name for name in runtime.hooks.caller.timings][:4]
    assert hooks[4] == "other"


def test_label_values_and_help_are_escaped_so_the_text_parses_back() -> None:
    class Weird(Collector):
        def collect(self) -> Iterable[Metric]:
            metric = Metric("weird_count", 'help with \\ and "quotes"\nand a newline', "gauge")
            metric.add_sample("weird_count", {"queue": 'a"b\\c\nd'}, 1.0)
            yield metric

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Weird())

    (family,) = text_string_to_metric_families(render_text(registry).decode())

    assert family.documentation == 'help with \\ and "quotes"\nand a newline'
    assert family.samples[0].labels == {"queue": 'a"b\\c\nd'}


async def test_scheduled_aggregates_sum_queues_by_domain_tenant_and_campaign(
    runtime: Runtime, client: Any, enqueue: Enqueue, monkeypatch: Any
) -> None:
    enqueue("a@example.com", tenant="acme", campaign="welcome")
    enqueue("b@example.com", tenant="acme", campaign="welcome")
    enqueue("c@example.net", tenant="acme", campaign="welcome")
    enqueue("d@example.net", tenant="acme")
    enqueue("e@example.net", tenant="beta", campaign="news")
    enqueue("f@example.com")
    enqueue("g@example.com", routing_domain="relay.example")  # still example.com's
    values = _samples(await (await client.get("/metrics")).text())
    assert values[("scheduled_count_total", ())] == 7
    assert values[("scheduled_by_domain", (("domain", "example.com"),))] == 4
    assert values[("scheduled_by_domain", (("domain", "example.net"),))] == 3
    assert values[("scheduled_by_tenant", (("tenant", "acme"),))] == 4
    assert values[("scheduled_by_tenant", (("tenant", "beta"),))] == 1
    campaign = (("campaign", "welcome"), ("tenant", "acme"))
    assert values[("scheduled_by_tenant_campaign", campaign)] == 3
    assert values[("scheduled_by_tenant_campaign", (("campaign", "news"), ("tenant", "beta")))] == 1
    assert len([k for k in values if k[0] == "scheduled_by_tenant_campaign"]) == 2
    body = await (await client.get("/metrics.json")).json()
    assert body["scheduled_by_tenant_campaign"]["value"] == {
        "campaign": {"news": {"tenant": {"beta": 1}}, "welcome": {"tenant": {"acme": 3}}}}
    # A flood of one-off domains is capped as the per-queue gauge is.
    enqueue("h@example.org")
    monkeypatch.setattr(metrics, "MAX_SERIES", 2)
    values = _samples(await (await client.get("/metrics")).text())
    domains = {k[1][0][1]: v for k, v in values.items() if k[0] == "scheduled_by_domain"}
    assert domains == {"example.com": 4, "other": 3 + 1}
