"""Resource limits (issue 9 part 4, peers.md §6 tests 9-10): connection floods and slow
clients are bounded, and memory stays bounded with many connections and a slow log sink.
"""

from __future__ import annotations

import asyncio

import pytest

from bench.reliability.abuse import (
    connection_flood,
    hold_connections,
    idle_client,
    probe,
    trickle_client,
    wait_until,
)
from bench.reliability.crash import KumoServer, Ledger, World, load_worker
from tests.reliability.conftest import StartKumo, unique

MAX_CONNECTIONS = 20


@pytest.fixture(scope="module")
def limited(start_module_kumo: StartKumo) -> KumoServer:
    return start_module_kumo(listener={"max_connections": MAX_CONNECTIONS, "client_timeout": "1s"})


def test_connections_over_max_connections_get_421_4_3_2(limited: KumoServer) -> None:
    flood = connection_flood(limited.port, MAX_CONNECTIONS + 15)
    assert flood.greeted <= MAX_CONNECTIONS, flood
    assert flood.refused_421 >= 15, flood
    assert flood.greeted + flood.refused_421 == MAX_CONNECTIONS + 15, flood
    # Once the flood is gone, a client gets in again.
    assert wait_until(
        lambda: probe(limited.port, f"ok.{unique('flood')}@crash.test").code == 250, 5
    )


def test_an_idle_client_is_disconnected_with_421_after_client_timeout(limited: KumoServer) -> None:
    seconds, last = idle_client(limited.port, limit=4)
    assert 0.8 <= seconds <= 4, seconds
    assert b"421 4.3.2" in last and b"idle too long" in last, last


def test_a_client_that_stops_in_the_middle_of_data_is_disconnected(limited: KumoServer) -> None:
    partial = (
        b"EHLO slow.test\r\nMAIL FROM:<a@src.test>\r\n"
        b"RCPT TO:<ok.stalled@relay.test>\r\nDATA\r\nSubject: half\r\n\r\nhalf a bo"
    )
    seconds, last = idle_client(limited.port, after=partial, limit=4)
    assert seconds <= 4, seconds
    assert b"421 4.3.2" in last, last


def test_a_client_trickling_slower_than_client_timeout_is_disconnected(
    limited: KumoServer,
) -> None:
    sent, seconds, last = trickle_client(limited.port, b"EHLO slowloris\r\n", 1.5, limit=4)
    assert sent < len(b"EHLO slowloris\r\n"), (sent, seconds)
    assert b"421 4.3.2" in last, last


@pytest.mark.slow
def test_graceful_stop_tells_idle_clients_421_and_exits_promptly(start_kumo: StartKumo) -> None:
    import time

    server = start_kumo()
    with hold_connections(server.port, 5) as socks:
        started = time.monotonic()
        assert server.terminate(timeout=20) == 0
        seconds = time.monotonic() - started
        for sock in socks:
            sock.settimeout(1)
            assert b"421 4.3.2" in sock.recv(512)
    assert seconds < 3, f"graceful stop took {seconds:.1f}s with idle clients"


@pytest.mark.slow
def test_memory_per_idle_connection_stays_small(start_kumo: StartKumo) -> None:
    server = start_kumo(listener={"client_timeout": "60s"})
    probe(server.port, f"ok.{unique('mem')}@crash.test")
    before = server.rss_kib()
    sources = [f"127.0.1.{n}" for n in range(2, 250)]
    with hold_connections(server.port, 1000, sources=sources) as socks:
        assert len(socks) == 1000
        held = server.rss_kib()
        assert probe(server.port, f"ok.{unique('mem')}@crash.test").code == 250
    per_connection = (held - before) / 1000
    assert per_connection < 64, f"{per_connection:.1f} KiB per idle connection"


@pytest.mark.slow
def test_half_sent_messages_do_not_grow_memory_by_what_clients_sent(
    start_kumo: StartKumo,
) -> None:
    import contextlib
    import time

    # Unfinished DATA is charged to the listener's budget (max_data_buffered): past it,
    # the rest of each message is read and discarded (452 4.3.1 at the final dot).
    server = start_kumo(listener={"client_timeout": "60s", "max_data_buffered": "12 MiB",
                                  "max_message_size": "8 MiB"})
    probe(server.port, f"ok.{unique('data-mem')}@crash.test")
    before = server.rss_kib()
    start = b"EHLO big.test\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<ok.big@relay.test>\r\nDATA\r\n"
    chunk = (b"y" * 998 + b"\r\n") * 1024  # 1 MiB
    with hold_connections(server.port, 20) as socks:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.sendall(start + chunk * 3)
        time.sleep(0.5)
        grown_mib = (server.rss_kib() - before) / 1024
    assert grown_mib < 30, f"{grown_mib:.0f} MiB for 60 MiB of unfinished DATA"


@pytest.mark.slow
@pytest.mark.serial  # over 150 messages in 2 s: not with other workers
async def test_a_stuck_log_sink_neither_blocks_reception_nor_grows_memory_without_bound(
    start_kumo: StartKumo, world: World
) -> None:
    server = start_kumo(slow_log_sink=30.0)  # a sink that takes 30 s per batch
    ledger = Ledger()
    counter = iter(range(10**9))
    stop = asyncio.Event()

    def next_recipient() -> str:
        return f"ok.slowlog{next(counter)}@crash.test"

    tasks = [
        asyncio.create_task(load_worker(server.port, ledger, next_recipient, stop))
        for _ in range(4)
    ]
    await asyncio.sleep(2)
    stop.set()
    await asyncio.wait(tasks, timeout=10)
    assert len(ledger.accepted) > 150, ledger.refused
    assert not ledger.refused
    # Every accepted message is delivered: the stuck sink delays nothing but its own lane.
    assert await asyncio.to_thread(
        wait_until, lambda: all(world.sink.recipients()[r.lower()] for r in ledger.accepted), 20
    )
    assert server.rss_kib() < 400_000
