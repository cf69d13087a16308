"""The source-health table (kumocore.queue.source_health) and the failure classification
(kumocore.delivery.source_failure), on a fake clock and real sockets."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import pytest

from bench.common.ports import free_port
from kumocore.config import EgressSource
from kumocore.delivery.proxy import Progress, Route, open_stream
from kumocore.delivery.source_failure import classify
from kumocore.queue.source_health import (
    PROXY_UNHEALTHY,
    UNPLUMBED,
    WINDOW_BUCKETS,
    FailureWindow,
    SourceHealth,
    first_healthy,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def source(**options: Any) -> EgressSource:
    return EgressSource.from_options({"name": "s", **options})


def unplumbed_address() -> str:
    """An IPv4 address on no interface of this machine (bind fails: EADDRNOTAVAIL)."""
    for candidate in ("192.0.2.1", "10.255.255.1", "203.0.113.77"):
        with socket.socket() as sock:
            try:
                sock.bind((candidate, 0))
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:
                    return candidate
    pytest.skip("every candidate address is plumbed here")


def test_a_failure_without_a_rule_is_counted_but_suspends_nothing() -> None:
    health = SourceHealth(Clock())
    health.record(source(), UNPLUMBED)
    assert health.failures[("s", UNPLUMBED)] == 1
    assert health.suspended == {} and health.remaining("s") is None


def test_immediate_suspends_on_the_first_failure_until_the_duration_ends() -> None:
    clock = Clock()
    health = SourceHealth(clock)
    health.record(source(suspend_when_unplumbed={"duration": "5s"}), UNPLUMBED)
    assert health.remaining("s") == 5.0
    assert health.gauge == {("s", UNPLUMBED): 1}
    clock.now += 4.9
    assert health.remaining("s") == pytest.approx(0.1)
    clock.now += 0.1
    assert health.remaining("s") is None
    assert health.gauge == {("s", UNPLUMBED): 0}
    assert health.suspensions[("s", UNPLUMBED)] == 1


def test_a_rule_for_the_other_kind_does_not_fire() -> None:
    health = SourceHealth(Clock())
    health.record(source(suspend_when_unplumbed={"duration": "5s"}), PROXY_UNHEALTHY)
    assert health.remaining("s") is None
    assert health.failures[("s", PROXY_UNHEALTHY)] == 1


def test_threshold_needs_n_failures_within_the_window() -> None:
    clock = Clock()
    health = SourceHealth(clock)
    rule = source(suspend_when_unplumbed={"trigger": {"Threshold": "3/1m"}, "duration": "5s"})
    health.record(rule, UNPLUMBED)
    clock.now += 61  # the first one leaves the window
    health.record(rule, UNPLUMBED)
    health.record(rule, UNPLUMBED)
    assert health.remaining("s") is None
    health.record(rule, UNPLUMBED)
    assert health.remaining("s") == 5.0


def test_a_failure_during_the_suspension_extends_it_without_a_new_transition() -> None:
    clock = Clock()
    health = SourceHealth(clock)
    rule = source(suspend_when_proxy_unhealthy={"duration": "5s"})
    health.record(rule, PROXY_UNHEALTHY)
    clock.now += 3
    health.record(rule, PROXY_UNHEALTHY)
    assert health.remaining("s") == 5.0
    assert health.suspensions[("s", PROXY_UNHEALTHY)] == 1
    clock.now += 5
    health.record(rule, PROXY_UNHEALTHY)  # after it ended: a new suspension
    assert health.suspensions[("s", PROXY_UNHEALTHY)] == 2


def test_a_suspension_for_another_reason_moves_the_gauge() -> None:
    health = SourceHealth(Clock())
    rules = source(suspend_when_unplumbed={"duration": "5s"},
                   suspend_when_proxy_unhealthy={"duration": "9s"})  # fmt: skip
    health.record(rules, UNPLUMBED)
    health.record(rules, PROXY_UNHEALTHY)
    assert health.gauge == {("s", UNPLUMBED): 0, ("s", PROXY_UNHEALTHY): 1}
    assert health.remaining("s") == 9.0


def test_the_failure_window_keeps_at_most_its_buckets_however_many_failures() -> None:
    window = FailureWindow(3600)
    count = 0
    for second in range(0, 7200, 7):  # two hours of failures every 7 s
        count = window.add(float(second))
    assert len(window.buckets) <= WINDOW_BUCKETS + 1
    assert 3600 // 7 - 60 <= count <= 3600 // 7 + 60  # about one window's worth


async def test_the_suspension_clears_on_time_without_anyone_asking() -> None:
    health = SourceHealth()
    health.record(source(suspend_when_unplumbed={"duration": "200ms"}), UNPLUMBED)
    assert health.gauge[("s", UNPLUMBED)] == 1
    await asyncio.sleep(0.4)
    assert health.suspended == {}  # the timer pruned it, not a query
    assert health.gauge[("s", UNPLUMBED)] == 0


class _Queue:
    name, pool_name = "example.com", "p"


def test_rotation_passes_over_the_suspended_source_and_waits_when_all_are() -> None:
    from kumocore.queue.errors import RoutingError
    from kumocore.queue.pool import WeightedRoundRobin

    health = SourceHealth(Clock())
    rotation = WeightedRoundRobin([("a", 1), ("b", 1)])
    health.record(EgressSource.from_options(
        {"name": "a", "suspend_when_unplumbed": {"duration": "5s"}}), UNPLUMBED)  # fmt: skip
    assert {first_healthy(_Queue(), rotation, health) for _ in range(4)} == {"b"}  # type: ignore[arg-type]
    health.record(EgressSource.from_options(
        {"name": "b", "suspend_when_unplumbed": {"duration": "3s"}}), UNPLUMBED)  # fmt: skip
    with pytest.raises(RoutingError) as info:
        first_healthy(_Queue(), rotation, health)  # type: ignore[arg-type]
    assert info.value.retry_after == 3.0  # the earliest end of the pool's suspensions
    assert "are eligible for selection at this time" in info.value.response.content


# ---------------------------------------------------------------------- classification
async def _failure(route: Route, address: str, port: int, timeout: float = 5) -> str | None:
    progress = Progress()
    try:
        await asyncio.wait_for(open_stream(route, address, port, limit=1024, progress=progress),
                               timeout)  # fmt: skip
    except Exception as exc:
        return classify(exc, route, progress)
    raise AssertionError("the connection opened")


async def test_binding_an_unplumbed_source_address_is_unplumbed() -> None:
    route = Route(None, None, unplumbed_address())
    assert await _failure(route, "127.0.0.1", free_port()) == UNPLUMBED


async def test_a_refused_direct_connection_is_the_destination_not_the_source() -> None:
    route = Route(None, None, "127.0.10.7")
    assert await _failure(route, "127.0.0.1", free_port()) is None


async def test_a_socks5_proxy_where_nothing_listens_is_proxy_unhealthy() -> None:
    route = Route("socks5", ("127.0.0.44", free_port("127.0.0.44")), "127.0.10.44")
    assert await _failure(route, "127.0.0.1", 25) == PROXY_UNHEALTHY


async def test_a_proxy_that_takes_the_connection_but_stays_silent_is_not_classified() -> None:
    # Past the TCP connection the time runs out in the handshake: the proxy answered, so
    # (as KumoMTA) it is not counted against it.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()
        finally:
            writer.close()

    server = await asyncio.start_server(silent, "127.0.0.45", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        route = Route("socks5", ("127.0.0.45", port), "127.0.10.45")
        assert await _failure(route, "127.0.0.1", 25, timeout=0.3) is None
    finally:
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.05)  # the handler sees the client's reset and closes


async def test_a_timeout_before_the_proxy_took_the_connection_is_proxy_unhealthy() -> None:
    route = Route("socks5", ("127.0.0.46", 1080), "127.0.10.46")
    progress = Progress()  # open_stream never got as far as the proxy
    assert classify(TimeoutError(), route, progress) == PROXY_UNHEALTHY
    progress.proxy_connected = True
    assert classify(TimeoutError(), route, progress) is None
