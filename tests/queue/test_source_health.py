"""Egress source health on real queues (KumoMTA's ``suspend_when_unplumbed`` and
``suspend_when_proxy_unhealthy``): a source whose address is on no interface of this
machine, or whose SOCKS5 proxy does not listen, is suspended and passed over by its
pool; the plumbed source binds 127.0.10.N, so the sink tells which one carried a message.
Metrics are read as ``/metrics`` renders them."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from bench.common.ports import free_port
from bench.common.sink import RecordingSink
from kumocore.admin.metrics import registry_for, render_text
from tests.queue.harness import Bench
from tests.queue.test_source_health_table import unplumbed_address
from tests.support.proxies import DANTED, dante_socks5

GOOD = "127.0.10.51"
#: The failed attempt is retried on the queue's schedule, out of the way of the checks.
QUEUE = {"egress_pool": "p", "retry_interval": "1h"}


async def _bench(make_bench: Any, pool: list[str], **sources: dict[str, Any]) -> Bench:
    bench: Bench = await make_bench(queue=QUEUE, pools={"p": [{"name": n} for n in pool]})
    for name, options in sources.items():
        bench.runtime.kumo.define_egress_source(name=name, **options)
    return bench


def metrics(bench: Bench) -> str:
    return render_text(registry_for(bench.runtime.services)).decode()


async def test_an_unplumbed_source_is_suspended_and_the_pool_sends_via_the_other(
    make_bench: Any, sink: RecordingSink
) -> None:
    bench = await _bench(
        make_bench, ["bad", "good"],
        bad={"source_address": unplumbed_address(),
             "suspend_when_unplumbed": {"duration": "1m"}},
        good={"source_address": GOOD},
    )  # fmt: skip
    first = await bench.inject("first@example.com")  # the rotation starts with "bad"
    [failure] = await bench.wait_for_records("TransientFailure", 1)
    assert failure["id"] == first.id and failure["egress_source"] == "bad"
    content = failure["response"]["content"]
    assert "cannot assign requested address" in content
    assert "source bad is unhealthy and suspended" in content  # the next MX: at once
    for n in range(4):
        await bench.inject(f"r{n}@example.com")
    received = await sink.wait_for(4)
    assert {m.source_ip for m in received} == {GOOD}
    assert len(bench.log_sink.of_type("TransientFailure")) == 1
    text = metrics(bench)
    assert 'egress_source_connection_failures_total{kind="Unplumbed",source="bad"} 1.0' in text
    assert 'egress_source_health_suspensions_total{reason="Unplumbed",source="bad"} 1.0' in text
    assert 'egress_source_health_suspended{reason="Unplumbed",source="bad"} 1.0' in text
    assert "# TYPE egress_source_health_suspended gauge" in text
    assert "# TYPE egress_source_connection_failures_total counter" in text


async def test_without_the_rule_the_failure_is_counted_and_the_source_stays_in_use(
    make_bench: Any, sink: RecordingSink
) -> None:
    bench = await _bench(
        make_bench, ["bad", "good"],
        bad={"source_address": unplumbed_address()}, good={"source_address": GOOD},
    )  # fmt: skip
    # looped.example has one MX host: one classified failure per attempt.
    await bench.inject("first@looped.example")
    await bench.wait_for_records("TransientFailure", 1)
    for n in range(4):
        await bench.inject(f"r{n}@looped.example")
    await sink.wait_for(2)
    await bench.wait_for_records("TransientFailure", 3)  # "bad" keeps getting its turn
    text = metrics(bench)
    assert 'egress_source_connection_failures_total{kind="Unplumbed",source="bad"} 3.0' in text
    assert "egress_source_health_suspended{" not in text


async def test_the_suspension_clears_after_its_duration_and_the_source_is_tried_again(
    make_bench: Any, sink: RecordingSink
) -> None:
    bench = await _bench(
        make_bench, ["bad", "good"],
        bad={"source_address": unplumbed_address(),
             "suspend_when_unplumbed": {"duration": "1s"}},
        good={"source_address": GOOD},
    )  # fmt: skip
    await bench.inject("first@example.com")
    await bench.wait_for_records("TransientFailure", 1)
    await bench.inject("during@example.com")
    await sink.wait_for(1)
    assert 'suspended{reason="Unplumbed",source="bad"} 1.0' in metrics(bench)
    await bench.wait_until(
        lambda: 'suspended{reason="Unplumbed",source="bad"} 0.0' in metrics(bench), 3.0
    )
    for n in range(2):  # one of the two goes to "bad" again
        await bench.inject(f"after{n}@example.com")
    await bench.wait_for_records("TransientFailure", 2)
    text = metrics(bench)
    assert 'egress_source_health_suspensions_total{reason="Unplumbed",source="bad"} 2.0' in text


async def test_threshold_3_per_minute_suspends_only_at_the_third_failure(
    make_bench: Any, sink: RecordingSink
) -> None:
    rule = {"trigger": {"Threshold": "3/1m"}, "duration": "1m"}
    bench = await _bench(
        make_bench, ["bad"],
        bad={"source_address": unplumbed_address(), "suspend_when_unplumbed": rule},
    )  # fmt: skip
    for n in range(1, 4):  # looped.example: one MX host, one failure per attempt
        await bench.inject(f"r{n}@looped.example")
        await bench.wait_for_records("TransientFailure", n)
        suspended = 'suspended{reason="Unplumbed",source="bad"} 1.0' in metrics(bench)
        assert suspended == (n == 3), n
    await bench.inject("fourth@looped.example")  # the pool's only source is suspended
    records = await bench.wait_for_records("TransientFailure", 4)
    assert records[-1]["response"]["content"] == (
        "KumoMTA internal: no sources for looped.example pool=`p` are eligible for selection "
        "at this time"
    )
    assert records[-1]["egress_source"] is None and records[-1]["egress_pool"] == "p"


@pytest.mark.skipif(not os.path.exists(DANTED), reason="dante-server not installed")
async def test_an_unreachable_socks5_proxy_suspends_and_the_message_waits_for_the_expiry(
    make_bench: Any, sink: RecordingSink
) -> None:
    # The proxy is down: the first message's attempt suspends the pool's only source for
    # 2 s; the second message finds no source and waits until the suspension ends (not
    # the queue's retry interval of an hour), by which time the proxy is up.
    host, external = "127.0.0.52", "127.0.10.52"
    port = free_port(host)
    bench = await _bench(
        make_bench, ["proxied"],
        proxied={"socks5_proxy_server": f"{host}:{port}", "socks5_proxy_source_address": external,
                 "socks5_proxy_bind_source": False,
                 "suspend_when_proxy_unhealthy": {"duration": "2s"}},
    )  # fmt: skip
    await bench.inject("first@example.com")
    [failure] = await bench.wait_for_records("TransientFailure", 1)
    assert f"socks5 proxy {host}:{port} unreachable" in failure["response"]["content"]
    text = metrics(bench)
    assert ('egress_source_connection_failures_total{kind="ProxyUnhealthy",source="proxied"} '
            "1.0") in text  # fmt: skip
    assert 'egress_source_health_suspended{reason="ProxyUnhealthy",source="proxied"} 1.0' in text
    started = time.monotonic()
    waiting = await bench.inject("waiting@example.com")
    records = await bench.wait_for_records("TransientFailure", 2)
    assert records[1]["id"] == waiting.id
    assert "are eligible for selection at this time" in records[1]["response"]["content"]
    with dante_socks5(host, external, port=port):
        [received] = await sink.wait_for(1, timeout=10)
        assert received.recipient == "waiting@example.com"
        assert received.source_ip == external
        assert time.monotonic() - started >= 1.5  # held until the suspension ended


async def test_messages_queued_on_the_suspended_source_go_back_to_be_routed_around_it(
    make_bench: Any, sink: RecordingSink
) -> None:
    # Four messages routed before the first attempt ends: two wait on "bad"'s ready
    # queue. The first one's attempt fails and suspends "bad"; the other is not tried
    # over it (no second failure) but goes back to its scheduled queue, as KumoMTA's
    # ready queue re-inserts it (a Delayed record, SourceIsUnhealthyAndSuspended).
    from kumocore.config import QueueConfig
    from kumocore.mail.message import Message

    bench = await _bench(
        make_bench, ["bad", "good"],
        bad={"source_address": unplumbed_address(),
             "suspend_when_unplumbed": {"duration": "1m"}},
        good={"source_address": GOOD},
    )  # fmt: skip
    store = bench.runtime.services.store
    assert store is not None
    messages = [Message("a@src.test", f"r{n}@looped.example", b"Subject: t\r\n\r\nhi\r\n")
                for n in range(4)]  # fmt: skip
    for message in messages:
        await store.save(message)
    for message in messages:  # all routed before any connection starts
        bench.queues.insert(message, "looped.example", QueueConfig.from_options(QUEUE))
    await sink.wait_for(2)

    def delayed() -> list[dict[str, Any]]:
        return [r for r in bench.log_sink.of_type("Delayed") if r["id"] == messages[2].id]

    def rerouted_at_once() -> bool:  # a jitter of 0 s (1 in 60): routed without a record
        return any(m.recipient == "r2@looped.example" for m in sink.messages)

    await bench.wait_until(lambda: bool(delayed()) or rerouted_at_once())
    [failure] = bench.log_sink.of_type("TransientFailure")
    assert failure["id"] == messages[0].id
    if not rerouted_at_once():
        [record] = delayed()
        assert record["response"]["content"].startswith(
            "Context: SourceIsUnhealthyAndSuspended. Next due in"
        )
        assert record["num_attempts"] == 0
