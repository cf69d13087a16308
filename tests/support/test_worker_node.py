"""The ports of :mod:`tests.support.worker_node` cannot be taken between their pick and
their bind: a held port is handed to no other ``free_port`` caller and refuses
connections like a closed one; a node whose port another process bound first starts
again on another port; a down destination's sink listens on the port it held."""

from __future__ import annotations

import itertools
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.common import ports
from bench.common.dns_server import TestDnsServer
from tests.support.worker_node import DownDestination, WorkerNode, held_port, mx_dns, send

DOMAIN = "ports.test"


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    with mx_dns(DOMAIN) as server:
        yield server


def _refused(port: int) -> bool:
    with socket.socket() as client:
        return client.connect_ex(("127.0.0.1", port)) == 111  # ECONNREFUSED


def test_free_port_does_not_hand_out_a_held_port(monkeypatch: pytest.MonkeyPatch) -> None:
    with held_port() as held:
        port = held.getsockname()[1]
        picks = itertools.chain([port, port], range(20_000, 30_000))
        monkeypatch.setattr(random, "randrange", lambda *_: next(picks))  # ports' picks
        monkeypatch.setattr(ports, "ephemeral_range", lambda: (65_000, 65_535))
        assert ports.free_port() != port
        assert _refused(port)


async def test_a_down_destination_refuses_connections_until_its_sink_listens_on_its_port(
) -> None:
    destination = DownDestination()
    try:
        assert _refused(destination.port)
        async with destination.sink() as sink:
            assert sink.port == destination.port
            await send(destination.port, DOMAIN, 0, 1)
            await sink.wait_for(1)
        assert _refused(destination.port)  # the sink's stop closed it
    finally:
        destination.close()


@pytest.mark.slow
async def test_a_node_whose_port_another_process_bound_first_starts_again_on_another_port(
    tmp_path: Path, dns: TestDnsServer
) -> None:
    node = WorkerNode(tmp_path, dns.address, 9)
    taken = node.smtp_port
    # What a parallel test that picked the same port just before it was held can do: bind
    # it (SO_REUSEADDR, as asyncio's servers) and listen.
    other = socket.socket()
    try:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", taken))
        other.listen()
        node.start(1)
        await node.ready()
        assert node.smtp_port != taken
        assert "cannot bind: Address already in use" in node.text()
        await send(node.smtp_port, DOMAIN, 0, 1)  # the node's listener, not the other one
        await node.terminate()
        node.start(2)  # a later start keeps the new port: it stayed held
        await node.ready()
        assert node.text().count("cannot bind") == 1
        await send(node.smtp_port, DOMAIN, 1, 1)
        await node.terminate()
    finally:
        node.kill9()
        other.close()
