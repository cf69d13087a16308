"""Delivery end to end: queue → egress path → real SMTP sink, and every outcome logged."""

from __future__ import annotations

import collections
import itertools

import pytest

from tests.queue.harness import Bench

POOL = {"p": [{"name": "s1"}, {"name": "s2", "weight": 2}]}


async def _define_sources(bench: Bench) -> None:
    for n in (1, 2):
        bench.runtime.kumo.define_egress_source(
            name=f"s{n}", source_address=f"127.0.10.{n}", ehlo_domain=f"mta{n}.test"
        )


async def test_message_is_delivered_and_removed_from_the_spool(make_bench) -> None:
    bench = await make_bench()
    await bench.inject("rcpt@example.com")
    records = await bench.wait_for_records("Delivery", 1)
    assert bench.sink.messages[0].recipient == "rcpt@example.com"
    assert records[0]["response"]["code"] == 250
    assert records[0]["site"] == "unspecified->mx1.example.com@smtp_client".replace(
        "mx1.example.com", "(mx1|mx2).example.com"
    )
    await bench.wait_until(lambda: bench.spooled() == 0)


async def test_pool_sources_bind_their_address_and_ehlo_in_weighted_rotation(make_bench) -> None:
    bench = await make_bench(queue={"egress_pool": "p"}, pools=POOL)
    await _define_sources(bench)
    for n in range(6):
        await bench.inject(f"r{n}@example.com")
    messages = await bench.sink.wait_for(6)
    by_source = collections.Counter((m.source_ip, m.ehlo) for m in messages)
    assert by_source == {("127.0.10.1", "mta1.test"): 2, ("127.0.10.2", "mta2.test"): 4}


async def test_domains_sharing_mx_hosts_share_one_ready_queue(make_bench) -> None:
    bench = await make_bench()
    await bench.inject("a@example.com")
    await bench.inject("b@other.example")
    await bench.wait_for_records("Delivery", 2)
    assert len(bench.queues.paths) == 1


async def test_connection_limit_and_deliveries_per_connection_hold_at_the_sink(make_bench) -> None:
    bench = await make_bench(path={"connection_limit": 2, "max_deliveries_per_connection": 3})
    for n in range(20):
        await bench.inject(f"r{n}@example.com")
    await bench.sink.wait_for(20)
    assert bench.sink.state.max_active["127.0.0.1"] <= 2
    assert max(bench.sink.state.per_connection.values()) <= 3


@pytest.mark.slow
async def test_max_message_rate_paces_deliveries_one_per_second(make_bench) -> None:
    # The reference policy's comcast.net shaping: max_message_rate = '1/second'.
    bench = await make_bench(path={"max_message_rate": "1/second"})
    for n in range(4):
        await bench.inject(f"r{n}@example.com")
    messages = await bench.sink.wait_for(4, timeout=15)
    arrivals = sorted(m.at for m in messages)
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.9, gaps


async def test_transient_failure_is_retried_then_delivered(make_bench) -> None:
    bench = await make_bench(queue={"retry_interval": "1s"})
    await bench.inject("tempfail-once@example.com")
    transient = await bench.wait_for_records("TransientFailure", 1)
    assert transient[0]["response"]["code"] == 451
    delivered = await bench.wait_for_records("Delivery", 1, timeout=10)
    assert delivered[0]["num_attempts"] == 1


async def test_permanent_failure_bounces_with_classification(make_bench) -> None:
    bench = await make_bench()
    await bench.inject("permfail@example.com")
    bounce = (await bench.wait_for_records("Bounce", 1))[0]
    assert bounce["response"]["code"] == 550
    assert bounce["response"]["enhanced_code"] == {"class": 5, "subject": 1, "detail": 1}
    assert bounce["bounce_classification"] == "Uncategorized"  # no classifier configured
    await bench.wait_until(lambda: bench.spooled() == 0)


async def test_message_past_max_age_expires(make_bench) -> None:
    bench = await make_bench(queue={"retry_interval": "1s", "max_age": "1s",
                                    "provider_name": "Example Mail"})  # fmt: skip
    await bench.inject("tempfail@example.com")
    expiration = (await bench.wait_for_records("Expiration", 1, timeout=10))[0]
    assert expiration["response"]["code"] == 551
    assert expiration["response"]["enhanced_code"]["subject"] == 4
    # The scheduled queue's record names its config's provider, as KumoMTA's does.
    assert expiration["provider_name"] == "Example Mail"
    # One attempt, or two when the retry (1 s) comes before the expiry (1 s): each
    # names its egress path's provider, and that path names none.
    failures = bench.log_sink.of_type("TransientFailure")
    assert failures and all(f.get("provider_name") is None for f in failures)
    await bench.wait_until(lambda: bench.spooled() == 0)


async def test_prohibited_mx_address_bounces_instead_of_looping(make_bench) -> None:
    bench = await make_bench(path={"prohibited_hosts": ["127.0.0.0/8"]})
    await bench.inject("user@looped.example")
    bounce = (await bench.wait_for_records("Bounce", 1))[0]
    assert bounce["response"]["code"] == 550
    assert "prohibited" in bounce["response"]["content"]
    assert bench.sink.messages == []


async def test_null_mx_domain_bounces(make_bench) -> None:
    bench = await make_bench()
    await bench.inject("user@nullmx.example")
    bounce = (await bench.wait_for_records("Bounce", 1))[0]
    assert bounce["response"]["code"] == 556


async def test_unknown_egress_pool_keeps_the_message_queued(make_bench) -> None:
    bench = await make_bench(queue={"egress_pool": "missing", "retry_interval": "60s"})
    await bench.inject("user@example.com")
    failure = (await bench.wait_for_records("TransientFailure", 1))[0]
    assert "egress pool 'missing' is not defined" in failure["response"]["content"]
    assert bench.spooled() == 1


async def test_one_queued_message_opens_one_connection_not_the_whole_limit(make_bench) -> None:
    bench = await make_bench(path={"connection_limit": 32})
    await bench.inject("only@example.com")
    await bench.wait_for_records("Delivery", 1)
    assert bench.sink.state.connections == 1
    assert max(r.connections for r in bench.queues.paths.values()) <= 1


@pytest.mark.slow
async def test_max_connection_rate_paces_new_connections(make_bench) -> None:
    bench = await make_bench(
        path={"max_connection_rate": "1/s", "max_deliveries_per_connection": 1}
    )
    for n in range(3):
        await bench.inject(f"r{n}@example.com")
    messages = await bench.sink.wait_for(3, timeout=15)
    arrivals = sorted(m.at for m in messages)
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert bench.sink.state.connections == 3
    assert min(gaps) >= 0.9, gaps


async def test_a_throttle_store_error_on_a_slot_is_retried_not_stranding_the_queue(
    make_bench,
) -> None:
    bench = await make_bench()
    store = bench.runtime.services.throttles or bench.queues.egress.local
    real_acquire = store.acquire_lease
    failures = []

    async def fails_once(*args, **kwargs):
        if not failures:
            failures.append(True)
            raise RuntimeError("throttle store broke")
        return await real_acquire(*args, **kwargs)

    store.acquire_lease = fails_once
    await bench.inject("after-error@example.com")  # the only arrival: nothing else wakes it
    await bench.wait_for_records("Delivery", 1)
    assert failures and bench.sink.messages[0].recipient == "after-error@example.com"
