"""Source selection rates (IP warm-up) on real queues, as KumoMTA's ``select_and_insert``
applies them: a source past the ``source_selection_rate`` (or an entry of
``additional_source_selection_rates``) of its path is passed over for the next candidate
of the pool's rotation; with none left the message gets KumoMTA's TransientFailure and is
retried on its queue's schedule. Sources bind 127.0.10.1 (``s1``) and 127.0.10.2
(``s2``), so the sink tells which one carried each message."""

from __future__ import annotations

import collections
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.sink import RecordingSink
from kumocore import hookimpl
from kumocore.config import EgressPathConfig, EgressPool, QueueConfig
from kumocore.errors import ConfigError
from kumocore.queue.pool import WeightedRoundRobin
from kumocore.queue.source_selection import selection_throttles
from tests.queue.harness import ZONES, Bench

S1, S2 = "127.0.10.1", "127.0.10.2"
SOURCE_OF = {S1: "s1", S2: "s2"}
EVEN_POOL = {"p": [{"name": "s1"}, {"name": "s2"}]}
#: A second destination on its own MX host: another site, so other ready queues.
FAR_ZONES = {
    "far.example": {"MX": [(10, "mx3.example.net")]},
    "mx3.example.net": {"A": ["127.0.0.1"]},
}


@dataclass
class WarmupPolicy:
    """Path options per (source, site-bearing domain); pools and the queue from tables."""

    sink_port: int
    by_source: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_domain_source: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    queue: dict[str, Any] = field(default_factory=dict)
    pools: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    asked: collections.Counter[str] = field(default_factory=collections.Counter)

    @hookimpl
    def kumo_get_egress_path_config(
        self, domain: str, egress_source: str, site_name: str
    ) -> EgressPathConfig:
        self.asked[f"{egress_source}->{site_name}"] += 1
        options = {"smtp_port": self.sink_port, "prohibited_hosts": [], "idle_timeout": 0.2}
        options.update(self.by_source.get(egress_source, {}))
        options.update(self.by_domain_source.get((domain, egress_source), {}))
        return EgressPathConfig.from_options(options)

    @hookimpl
    def kumo_get_queue_config(self) -> QueueConfig:
        return QueueConfig.from_options(self.queue)

    @hookimpl
    def kumo_get_egress_pool(self, pool_name: str) -> EgressPool | None:
        entries = self.pools.get(pool_name, EVEN_POOL.get(pool_name))
        return EgressPool.from_options({"name": pool_name, "entries": entries}) if entries else None


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    with TestDnsServer({**ZONES, **FAR_ZONES}) as server:
        yield server


@pytest.fixture
async def make_warmup(
    dns: TestDnsServer, sink: RecordingSink
) -> AsyncIterator[Callable[..., Awaitable[Bench]]]:
    benches: list[Bench] = []

    async def make(**policy: Any) -> Bench:
        policy["queue"] = {"egress_pool": "p", **policy.get("queue", {})}
        policy_object = WarmupPolicy(sink_port=sink.port, **policy)
        bench = await Bench(policy_object, dns, sink).start()  # type: ignore[arg-type]
        for n in (1, 2):
            bench.runtime.kumo.define_egress_source(name=f"s{n}", source_address=f"127.0.10.{n}")
        benches.append(bench)
        return bench

    yield make
    for bench in benches:
        await bench.stop()


def used(sink: RecordingSink, domain: str | None = None) -> collections.Counter[str]:
    """How many messages each source carried (to ``domain`` only, when given)."""
    return collections.Counter(
        SOURCE_OF[m.source_ip]
        for m in sink.messages
        if domain is None or m.recipient.endswith("@" + domain)
    )


async def send(bench: Bench, domain: str, count: int, tag: str = "r") -> None:
    for n in range(count):
        await bench.inject(f"{tag}{n}@{domain}")


# ---------------------------------------------------------------------- end to end
async def test_the_limited_source_is_selected_up_to_its_rate_and_the_rest_go_via_the_other(
    make_warmup: Any, sink: RecordingSink
) -> None:
    bench = await make_warmup(by_source={"s1": {"source_selection_rate": "2/h"}})
    await send(bench, "example.com", 8)
    await sink.wait_for(8)
    # Even weights would give s1 four of the eight; its rate allows two.
    assert used(sink) == {"s1": 2, "s2": 6}
    assert bench.log_sink.of_type("TransientFailure") == []


async def test_a_pool_without_selection_rates_alternates_as_before(
    make_warmup: Any, sink: RecordingSink
) -> None:
    bench = await make_warmup()
    await send(bench, "example.com", 8)
    await sink.wait_for(8)
    assert used(sink) == {"s1": 4, "s2": 4}


async def test_with_every_source_spent_the_message_fails_transiently_and_is_retried(
    make_warmup: Any, sink: RecordingSink
) -> None:
    # 2 selections per 2 s each: four messages go at once, the fifth finds no source
    # eligible, and goes at its retry 2 s later (each throttle frees one a second).
    rate = {"source_selection_rate": "2/2s"}
    bench = await make_warmup(
        by_source={"s1": rate, "s2": rate},
        queue={"retry_interval": "2s", "max_retry_interval": "2s"},
    )
    await send(bench, "example.com", 4)
    await sink.wait_for(4)
    started = time.time()
    late = await bench.inject("late@example.com")
    [failure] = await bench.wait_for_records("TransientFailure", 1)
    assert failure["id"] == late.id
    assert failure["response"]["code"] == 451
    assert failure["response"]["enhanced_code"] == {"class": 4, "subject": 4, "detail": 4}
    assert failure["response"]["content"] == (
        "KumoMTA internal: no sources for example.com pool=`p` are eligible for selection "
        "at this time"
    )
    assert failure["site"] == "" and failure["egress_pool"] == "p"
    assert failure["egress_source"] is None
    assert failure["num_attempts"] == 0
    deliveries = await bench.wait_for_records("Delivery", 5)
    [retried] = [d for d in deliveries if d["id"] == late.id]
    assert retried["num_attempts"] == 1  # the failed selection counted an attempt
    assert time.time() - started >= 1.9  # on the queue's schedule, not at once
    await bench.wait_until(lambda: bench.spooled() == 0)


async def test_source_selection_rate_is_a_budget_per_site(
    make_warmup: Any, sink: RecordingSink
) -> None:
    bench = await make_warmup(
        pools={"p": [{"name": "s1", "weight": 3}, {"name": "s2", "weight": 1}]},
        by_source={"s1": {"source_selection_rate": "3/h"}},
    )
    await send(bench, "example.com", 8, "a")
    await send(bench, "far.example", 8, "b")
    await sink.wait_for(16)
    assert used(sink, "example.com")["s1"] == 3
    assert used(sink, "far.example")["s1"] == 3


async def test_an_additional_selection_rate_is_one_budget_across_sites(
    make_warmup: Any, sink: RecordingSink
) -> None:
    # The same name on both sites' paths: one budget of 3 for s1, wherever it sends. The
    # first site spends it, so the second gets none (its own rate would allow 3 more).
    bench = await make_warmup(
        pools={"p": [{"name": "s1", "weight": 3}, {"name": "s2", "weight": 1}]},
        by_source={"s1": {"additional_source_selection_rates": {"s1-overall": "3/h"}}},
    )
    await send(bench, "example.com", 8, "a")
    await sink.wait_for(8)
    assert used(sink, "example.com") == {"s1": 3, "s2": 5}
    await send(bench, "far.example", 8, "b")
    await sink.wait_for(16)
    assert used(sink, "far.example") == {"s2": 8}
    assert bench.log_sink.of_type("TransientFailure") == []


async def test_the_smallest_rate_is_asked_first_so_a_larger_one_is_not_spent_on_a_refusal(
    make_warmup: Any, sink: RecordingSink
) -> None:
    # example.com's path of s1 has 'big' (3/h, shared with far.example's path) and 'tiny'
    # (1/h), 'big' first in the map. Six messages pick s1 first three times: the first
    # spends one of each; the other two are refused by 'tiny', asked first, so 'big' keeps
    # two selections for far.example. Asked in map order, 'big' would be spent there.
    bench = await make_warmup(
        by_domain_source={
            ("example.com", "s1"): {
                "additional_source_selection_rates": {"big": "3/h", "tiny": "1/h"}},
            ("far.example", "s1"): {"additional_source_selection_rates": {"big": "3/h"}},
        },
    )  # fmt: skip
    await send(bench, "example.com", 6, "a")
    await sink.wait_for(6)
    assert used(sink, "example.com") == {"s1": 1, "s2": 5}
    await send(bench, "far.example", 6, "b")
    await sink.wait_for(12)
    assert used(sink, "far.example")["s1"] == 2


async def test_without_selection_rates_no_throttle_is_asked_and_paths_stay_cached(
    make_warmup: Any, sink: RecordingSink
) -> None:
    bench = await make_warmup()
    calls: list[str] = []
    shared = bench.queues.egress
    store = shared.throttle_store(False)
    original = store.throttle

    async def counting(key: str, spec: Any, quantity: int = 1) -> Any:
        calls.append(key)
        return await original(key, spec, quantity)

    store.throttle = counting  # type: ignore[method-assign]
    await send(bench, "example.com", 10)
    await sink.wait_for(10)
    assert calls == []
    # One policy call per path, not per message.
    assert sorted(bench.policy.asked.values()) == [1, 1]  # type: ignore[attr-defined]


async def test_selection_throttles_live_in_the_nodes_throttle_store_under_kumomtas_names(
    make_warmup: Any, sink: RecordingSink
) -> None:
    bench = await make_warmup(
        by_source={"s1": {"source_selection_rate": "5/h",
                          "additional_source_selection_rates": {"warm": "7/d"}}},
    )  # fmt: skip
    calls: list[str] = []
    store = bench.queues.egress.throttle_store(False)
    original = store.throttle

    async def counting(key: str, spec: Any, quantity: int = 1) -> Any:
        calls.append(key)
        return await original(key, spec, quantity)

    store.throttle = counting  # type: ignore[method-assign]
    await bench.inject("one@example.com")
    await sink.wait_for(1)
    ready = "s1->(mx1|mx2).example.com@smtp_client"
    # 7/d is the smaller rate, so it is asked first.
    assert calls == ["warm:7:7:86400", f"kumomta.source_selection_rate.{ready}.s1:5:5:3600"]


# ---------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"source_selection_rate": "2/fortnight"}, "'source_selection_rate'"),
        ({"additional_source_selection_rates": {"warm": "lots"}},
         "additional_source_selection_rates[\"warm\"]"),
    ],
)  # fmt: skip
def test_a_bad_selection_rate_is_refused_naming_the_option(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError) as info:
        EgressPathConfig.from_options(options)
    assert named in str(info.value) and "kumo.make_egress_path" in str(info.value)


def test_selection_rates_are_no_longer_unsupported_options() -> None:
    config = EgressPathConfig.from_options(
        {"source_selection_rate": "100/d,max_burst=1",
         "additional_source_selection_rates": {"a": "local:10/h"}})  # fmt: skip
    assert str(config.source_selection_rate) == "100/d,max_burst=1"
    assert config.additional_source_selection_rates["a"].force_local
    assert "source_selection_rate" not in EgressPathConfig.unsupported_options


def test_throttles_sort_by_rate_and_equal_rates_keep_their_order() -> None:
    config = EgressPathConfig.from_options({
        "source_selection_rate": "24/d",  # 1/h: ties with 'hourly', comes first
        "additional_source_selection_rates": {"fast": "10/s", "hourly": "1/h", "slow": "1/d"},
    })  # fmt: skip
    names = [name for name, _ in selection_throttles(config, "s->site@smtp_client", "s")]
    assert names == ["slow", "kumomta.source_selection_rate.s->site@smtp_client.s", "hourly",
                     "fast"]  # fmt: skip


# ---------------------------------------------------------------------- the rotation
def _take(rotation: WeightedRoundRobin, count: int, excluded: set[str] | None = None) -> str:
    return "".join(rotation.next(excluded or set()) or "-" for _ in range(count))


def test_the_rotation_leaves_excluded_sources_out_and_keeps_the_others_weights() -> None:
    rotation = WeightedRoundRobin([("a", 2), ("b", 1), ("c", 1)])
    assert _take(rotation, 8) == "aabcaabc"
    # The position is shared (KumoMTA's index modulo the remaining count): c, then b.
    assert _take(rotation, 6, {"a"}) == "cbcbcb"
    assert _take(rotation, 3, {"a", "b", "c"}) == "---"


def test_one_remaining_source_is_taken_without_moving_the_rotation() -> None:
    rotation = WeightedRoundRobin([("a", 1), ("b", 1), ("c", 1)])
    assert _take(rotation, 1) == "a"
    assert _take(rotation, 2, {"a", "b"}) == "cc"
    assert _take(rotation, 2) == "bc"  # as if the excluded picks had not happened


def test_a_large_excluded_weight_does_not_make_the_rotation_spin() -> None:
    rotation = WeightedRoundRobin([("big", 10**12), ("x", 1), ("y", 1)])
    assert _take(rotation, 1) == "big"
    started = time.perf_counter()
    assert _take(rotation, 4, {"big"}) == "xyxy"
    assert time.perf_counter() - started < 0.05


class _Reference:
    """KumoMTA's ``next_impl`` written out plainly (no skipping ahead), to compare with."""

    def __init__(self, entries: list[tuple[str, int]]) -> None:
        self.entries = [e for e in entries if e[1] > 0]
        self.index, self.current = -1, 0

    def next(self, excluded: set[str]) -> str | None:
        import math

        entries = [e for e in self.entries if e[0] not in excluded]
        if len(entries) <= 1:
            return entries[0][0] if entries else None
        divisor = 0
        for _, weight in entries:
            divisor = math.gcd(divisor, weight)
        top = max(weight for _, weight in entries)
        while True:
            self.index = (self.index + 1) % len(entries)
            if self.index == 0:
                self.current = max(0, self.current - divisor)
                if self.current == 0:
                    self.current = top
            if entries[self.index][1] >= self.current:
                return entries[self.index][0]


def test_the_rotation_with_exclusions_picks_as_kumomtas_algorithm_does() -> None:
    import random

    rng = random.Random(7)
    for _ in range(200):
        entries = [(f"s{n}", rng.choice([0, 1, 2, 3, 4, 6, 9])) for n in range(rng.randint(1, 5))]
        ours, reference = WeightedRoundRobin(entries), _Reference(entries)
        for _ in range(40):
            excluded = {name for name, _ in entries if rng.random() < 0.3}
            assert ours.next(excluded) == reference.next(excluded), (entries, excluded)


# ---------------------------------------------------------------------- the ceiling
def test_the_selection_ceiling_is_the_lowest_rate_and_a_tie_keeps_the_primary() -> None:
    from kumocore.config.constraints import path_constraints, render_ceilings

    def ceiling(options: dict[str, Any]) -> Any:
        return path_constraints(EgressPathConfig.from_options(options))["max_source_selection_rate"]

    assert ceiling({}) is None
    assert ceiling(
        {
            "source_selection_rate": "10/h",
            "additional_source_selection_rates": {"day": "48/d", "slow": "1/h"},
        }
    ) == {"value": 1 / 3600, "source": {"kind": "additional", "name": "slow"}, "display": "1/h"}
    assert ceiling(
        {"source_selection_rate": "24/d", "additional_source_selection_rates": {"hour": "1/h"}}
    )["source"] == {"kind": "primary"}
    text = render_ceilings(
        path_constraints(
            EgressPathConfig.from_options(
                {"additional_source_selection_rates": {"warm": "local:5/m,max_burst=1"}}
            )
        )
    )
    assert "  source selection rate:  local:5/m,max_burst=1\n    source: warm\n" in text
