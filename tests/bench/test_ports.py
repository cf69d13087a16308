"""bench.common.ports: the ports that tests and benchmarks give their servers."""

from __future__ import annotations

import itertools
import socket

import pytest

from bench.common import ports


def test_free_ports_lie_below_the_ephemeral_range_and_can_be_bound() -> None:
    low, _ = ports.ephemeral_range()
    for _ in range(50):
        port = ports.free_port()
        assert ports.LOWEST <= port < low
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_that_is_taken_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        # The taken port twice, then other ports (more than one: a parallel test's
        # connection may hold the next one).
        picks = itertools.chain([busy, busy], (p for p in range(20_000, 30_000) if p != busy))
        monkeypatch.setattr(ports.random, "randrange", lambda *_: next(picks))
        monkeypatch.setattr(ports, "ephemeral_range", lambda: (65_000, 65_535))
        assert ports.free_port() != busy


def test_without_room_below_the_ephemeral_range_the_kernel_chooses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (ports.LOWEST + 10, 60_999))
    port = ports.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
