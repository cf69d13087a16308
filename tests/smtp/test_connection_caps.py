"""Admission: connections per peer IP, and a reserve of file descriptors (issue 14,
finding 4)."""

from __future__ import annotations

import os

import pytest

from kumocore.reception.smtp.limits import AuthFailures, descriptor_limit, descriptors_low
from tests.reception.harness import HOSTNAME
from tests.smtp.conftest import StartSmtp

PEER = "127.0.0.5"


async def test_connections_over_the_per_peer_cap_get_421(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_connections_per_peer=2)
    first = await env.session(PEER)
    second = await env.session(PEER)  # kept referenced: a collected client closes
    third = await env.client(PEER)
    assert str(await third.read_reply()) == \
        f"421 4.3.2 {HOSTNAME} too many connections from {PEER}. Try later"
    assert await third.closed()
    # Another peer is not affected, and the slot comes back when a connection ends.
    other = await env.client("127.0.0.6")
    assert (await other.read_reply()).code == 220
    await first.command("QUIT")
    await first.closed()
    again = await env.client(PEER)
    assert (await again.read_reply()).code == 220
    await second.close()


async def test_relay_hosts_are_exempt_from_the_per_peer_cap(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_connections_per_peer=1)
    clients = [await env.client("127.0.0.1") for _ in range(3)]
    for client in clients:
        assert (await client.read_reply()).code == 220


async def test_per_peer_cap_can_be_raised_for_a_peer_block(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_connections_per_peer=1,
                           peer={"127.0.0.5/32": {"max_connections_per_peer": 3}})
    clients = [await env.client(PEER) for _ in range(3)]
    for client in clients:
        assert (await client.read_reply()).code == 220


async def test_connections_are_refused_when_descriptors_run_low(start_smtp: StartSmtp) -> None:
    # Use up descriptors until fewer than the reserve are left below the limit.
    limit = descriptor_limit()
    if limit > 65536:
        pytest.skip("RLIMIT_NOFILE too high to fill in a test")
    reserve = 64
    env = await start_smtp(reserved_file_descriptors=reserve)
    held: list[int] = []
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            held.append(fd)
            if fd >= limit - reserve - 1:
                break
        client = await env.client(PEER)
        assert str(await client.read_reply()) == \
            f"421 4.3.2 {HOSTNAME} too many open files. Try later"
        await client.close()
    finally:
        for fd in held:
            os.close(fd)
    client = await env.client(PEER)
    assert (await client.read_reply()).code == 220


def test_descriptor_check_keeps_the_reserve_free() -> None:
    assert not descriptors_low(10_000 - 257, limit=10_000, reserve=256)
    assert descriptors_low(10_000 - 256, limit=10_000, reserve=256)
    # The reserve never takes more than a quarter of the limit.
    assert not descriptors_low(700, limit=1024, reserve=5000)
    assert descriptors_low(800, limit=1024, reserve=5000)


def test_auth_failures_are_forgotten_after_the_window() -> None:
    failures = AuthFailures(limit=3, window=60)
    for t in (0, 1, 2):
        failures.record("192.0.2.1", now=t)
    assert failures.blocked("192.0.2.1", now=3)
    assert not failures.blocked("192.0.2.2", now=3)
    assert not failures.blocked("192.0.2.1", now=61)  # only the failure at 2 is recent
    assert not failures.blocked("192.0.2.1", now=62.5)
    assert len(failures) == 0
