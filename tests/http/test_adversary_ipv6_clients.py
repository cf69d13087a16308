"""The HTTP listener's per-client limits count an IPv6 /64 as one client: one machine on
IPv6 may connect from any address of its /64 (:mod:`kumocore.reception.client_net`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from kumocore.http.auth import AuthFailures
from kumocore.http.connections import ConnectionGuard


def _connection(peer: str) -> Any:
    return SimpleNamespace(peer=peer, trusted=False, inner=object())


def test_connections_from_one_ipv6_64_share_max_connections_per_peer() -> None:
    guard = ConnectionGuard(object, max_connections=100, max_per_peer=3,
                            header_timeout=10.0, keepalive_timeout=30.0)  # fmt: skip
    same = [_connection(f"2001:db8:1:2::{n}") for n in range(1, 5)]
    answers = [guard.admit(conn) for conn in same]
    assert answers[:3] == [None, None, None]
    refusal = answers[3]
    assert refusal is not None and refusal[0] == 503
    assert "too many connections from 2001:db8:1:2::4" in refusal[2]
    assert guard.admit(_connection("2001:db8:1:3::1")) is None  # another /64
    guard.release(same[0])
    assert guard.admit(_connection("2001:db8:1:2::99")) is None  # a slot of the /64 freed
    assert guard.per_peer["2001:db8:1:2::/64"] == 3


def test_basic_auth_failures_from_one_ipv6_64_are_counted_together() -> None:
    failures = AuthFailures(limit=5, window=60)
    for n in range(5):
        failures.failed(f"2001:db8:1:2::{n}", now=0.0)
    assert failures.retry_after("2001:db8:1:2::abcd", now=1.0) is not None
    assert failures.retry_after("2001:db8:1:3::1", now=1.0) is None
