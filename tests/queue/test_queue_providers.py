"""The scheduled part of KumoMTA's ``queued_count_by_provider`` gauges: a scheduled
queue's provider label (its config's ``provider_name``, else its site as KumoMTA names
it), the running totals that follow a queue when its label changes, and the background
lookups that learn the site of queues whose messages wait before one was routed. The
sites come from a real DNS server on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kumocore.config import QueueConfig
from kumocore.dns import Resolver
from kumocore.dns.mx import MailExchanger
from kumocore.queue.queue_providers import (
    SITE_LOOKUP_WORKERS,
    SITE_LOOKUPS_PER_SECOND,
    QueuedByProvider,
    SiteLookups,
    site_of,
)
from kumocore.queue.schedule import ScheduledQueue
from kumocore.testing.dns import TestDnsServer

ZONES: dict[str, dict[str, Any]] = {
    "one.example": {"MX": [(10, "mx.one.example")]},
    "two.example": {"MX": [(10, "mx1.two.example"), (10, "mx2.two.example")]},
    "relay.example": {"MX": [(10, "mx.relay.example")]},
}


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    with TestDnsServer(ZONES) as server:
        yield server


def _queue(name: str, **options: Any) -> ScheduledQueue:
    return ScheduledQueue(name, QueueConfig.from_options(options))


async def test_the_site_is_the_mx_site_an_mx_list_or_the_destination_as_kumomta_names_it(
    dns: TestDnsServer,
) -> None:
    resolver = Resolver([dns.address], timeout=0.5)
    sites = {
        name: await site_of(queue, resolver.lookup_mx)
        for name, queue in {
            "mx": _queue("one.example"),
            "factored": _queue("tenant@two.example"),
            "routing domain": _queue("camp:tenant@any.example!relay.example"),
            "mx_list": _queue("x.example", protocol={"smtp": {"mx_list": ["10.0.0.1"]}}),
            "maildir": _queue("m.example", protocol={"maildir_path": "/tmp/md"}),
            "nxdomain": _queue("missing.example"),
        }.items()
    }
    assert sites == {
        "mx": "mx.one.example",
        "factored": "(mx1|mx2).two.example",
        "routing domain": "mx.relay.example",
        "mx_list": "mx_list:10.0.0.1",
        "maildir": "m.example",
        "nxdomain": "NXDOMAIN:missing.example",
    }
    dns.set_servfail(names=["one.example"])
    fresh = Resolver([dns.address], timeout=0.5)  # nothing cached
    assert await site_of(_queue("one.example"), fresh.lookup_mx) == "DNSFAIL:one.example"


def test_waiting_messages_move_with_their_queue_when_its_label_changes() -> None:
    totals = QueuedByProvider()
    queue = _queue("tenant@gmail.example", egress_pool="pool-a")
    other = _queue("yahoo.example")

    def change(q: ScheduledQueue, delta: int) -> None:
        totals.change(q, delta)
        q.waiting += delta

    change(queue, 1)
    change(queue, 1)
    change(other, 1)
    # No site yet: the destination domain names them.
    assert totals.by_provider == {"gmail.example": 2, "yahoo.example": 1}
    totals.learn_site(queue, "mx.gmail.example")
    assert totals.by_provider == {"mx.gmail.example": 2, "yahoo.example": 1}
    assert totals.by_provider_and_pool == {("mx.gmail.example", "pool-a"): 2,
                                           ("yahoo.example", "unspecified"): 1}  # fmt: skip
    # The config (refreshed on insert) names a provider and another pool: the next change
    # moves what was counted before, then counts itself.
    queue.config = QueueConfig.from_options({"egress_pool": "pool-b", "provider_name": "G"})
    change(queue, -1)
    assert totals.by_provider == {"G": 1, "yahoo.example": 1}
    assert totals.by_provider_and_pool == {("G", "pool-b"): 1,
                                           ("yahoo.example", "unspecified"): 1}  # fmt: skip
    change(queue, -1)
    change(other, -1)
    assert totals.by_provider == {} and totals.by_provider_and_pool == {}  # no zero series


async def test_each_waiting_queue_without_a_site_is_looked_up_once_by_few_tasks_at_a_paced_rate(
    dns: TestDnsServer,
) -> None:
    resolver = Resolver([dns.address], timeout=0.5)
    in_flight = most = 0

    async def counted_lookup(domain: str) -> MailExchanger:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(0.01)  # long enough for the workers to overlap
            return await resolver.lookup_mx(domain)
        finally:
            in_flight -= 1

    totals = QueuedByProvider()
    lookups = SiteLookups(counted_lookup, totals.learn_site)
    queues = [_queue(f"t{n}@one.example") for n in range(40)]
    named = _queue("two.example", provider_name="Two")  # a provider needs no site
    for queue in [*queues, *queues, named]:  # each queue asked for twice
        lookups.want(queue)
    assert len(lookups) == 40
    started = time.monotonic()
    lookups.start(asyncio.get_running_loop())
    try:
        for _ in range(200):
            if all(q.site is not None for q in queues):
                break
            await asyncio.sleep(0.02)
        took = time.monotonic() - started
    finally:
        await lookups.stop()
    assert {q.site for q in queues} == {"mx.one.example"}
    # Paced: 40 lookups take at least 40 / SITE_LOOKUPS_PER_SECOND (the last pause aside).
    assert took >= (40 - SITE_LOOKUP_WORKERS) / SITE_LOOKUPS_PER_SECOND
    assert named.site is None and not named.site_pending
    assert 1 < most <= SITE_LOOKUP_WORKERS
    mx_queries = [q for q in dns.queries if q[1] == "MX"]
    assert len(mx_queries) == 1  # one domain: the resolver's cache answers the rest
