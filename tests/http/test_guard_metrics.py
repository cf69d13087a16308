"""The HTTP listeners' connection guards on ``/metrics``: open connections, and the
connections refused or closed for each limit, by listener."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from kumocore.http.connections import ConnectionGuard
from kumocore.http.guard_metrics import REASONS, http_guard_metrics
from tests.http.conftest import HttpEnv, StartHttp

LISTEN = "127.0.0.1:0"


def _series(text: str) -> dict[tuple[str, str, str], float]:
    """{(family, listener, reason): value} of the two families."""
    return {
        (family.name, sample.labels["listener"], sample.labels.get("reason", "")): sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("kumocore_http_connections")
        for sample in family.samples
    }


async def _scrape(env: HttpEnv) -> dict[tuple[str, str, str], float]:
    status, text, _ = await env.request("GET", "/metrics")
    assert status == 200, text
    return _series(text)


async def test_a_connection_closed_for_slow_headers_is_counted_on_metrics_by_listener(
    start_http: StartHttp,
) -> None:
    env = await start_http(header_timeout="1s")
    before = await _scrape(env)
    host, port = env.listener.address
    reader, writer = await asyncio.open_connection(host, port, local_addr=("127.0.0.5", 0))
    try:
        writer.write(b"GET /api/check-liveness/v1 HTTP/1.1\r\nHost: x\r\n")  # no end
        assert (await asyncio.wait_for(reader.read(100), 3)).startswith(b"HTTP/1.1 408")
    finally:
        writer.close()
    after = await _scrape(env)
    closed = ("kumocore_http_connections_closed", LISTEN, "slow_headers")
    assert after[closed] - before.get(closed, 0) == 1
    for reason in ("refused", "idle", "slow_reader", "failed_handshake"):
        key = ("kumocore_http_connections_closed", LISTEN, reason)
        assert after[key] == before.get(key, 0), reason
    # the scrape's own connection is open while it is answered
    assert after[("kumocore_http_connections", LISTEN, "")] >= 1


def _guard() -> ConnectionGuard:
    return ConnectionGuard(lambda: asyncio.Protocol(), max_connections=10, max_per_peer=5,
                           header_timeout=1, keepalive_timeout=1)  # fmt: skip


def test_guards_under_one_address_are_added_up_into_one_series_each() -> None:
    first, second, other = _guard(), _guard(), _guard()
    first.closed_slow_readers, second.closed_slow_readers = 2, 3
    second.refused, other.closed_idle = 4, 7
    families = list(http_guard_metrics(
        [(first, "0.0.0.0:8000"), (second, "0.0.0.0:8000"), (other, "[::]:8001")]))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in families for s in family.samples}  # fmt: skip
    assert len(samples) == 2 * (1 + len(REASONS))  # no series twice
    closed = "kumocore_http_connections_closed_total"
    assert samples[(closed, (("listener", "0.0.0.0:8000"), ("reason", "slow_reader")))] == 5
    assert samples[(closed, (("listener", "0.0.0.0:8000"), ("reason", "refused")))] == 4
    assert samples[(closed, (("listener", "[::]:8001"), ("reason", "idle")))] == 7
    assert samples[("kumocore_http_connections", (("listener", "[::]:8001"),))] == 0


def test_no_families_without_an_http_listener() -> None:
    assert list(http_guard_metrics([])) == []


async def test_a_listener_is_counted_by_its_own_node_only(start_http: StartHttp) -> None:
    first, second = await start_http(), await start_http()
    mine, theirs = first.reception.runtime.services, second.reception.runtime.services
    assert mine is not None and theirs is not None and mine is not theirs
    assert (first.listener.guard, LISTEN) in mine.metrics.http_guards
    assert (first.listener.guard, LISTEN) not in theirs.metrics.http_guards
    assert (second.listener.guard, LISTEN) in theirs.metrics.http_guards
