"""The ports of :mod:`tests.support.worker_node` (and of every
:class:`~bench.common.serve_process.ServeProcess`) cannot be taken between their pick and
their bind: a held port is handed to no other ``free_port`` caller and refuses
connections like a closed one; a port ``free_port`` handed out is handed to no other
process for a while; a node whose port another process bound first starts again on
another port; a down destination's sink listens on the port it held."""

from __future__ import annotations

import itertools
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.common import ports
from bench.common.dns_server import TestDnsServer
from bench.common.serve_process import ServeProcess
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


def test_free_port_does_not_hand_out_a_port_another_process_was_handed_lately(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another process (an xdist worker) is handed a port; it binds it only later.
    other = subprocess.run([sys.executable, "-c",
                            "from bench.common.ports import free_port; print(free_port())"],
                           cwd=Path(__file__).parents[2], check=True, capture_output=True,
                           text=True)  # fmt: skip
    port = int(other.stdout)
    picks = itertools.chain([port, port], range(20_000, 30_000))
    monkeypatch.setattr(random, "randrange", lambda *_: next(picks))
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (65_000, 65_535))
    assert ports.free_port() != port


def test_a_serve_process_holds_its_listener_ports_until_it_is_stopped(tmp_path: Path) -> None:
    node = ServeProcess(tmp_path / "policy.py", tmp_path / "kumocore.log",
                        listen_ports=["T_SMTP", "T_HTTP"])  # fmt: skip
    try:
        assert set(node.ports) == {"T_SMTP", "T_HTTP"}
        for key, port in node.ports.items():
            assert node.env[key] == str(port)
            assert _refused(port)
            with socket.socket() as plain, pytest.raises(OSError):  # free_port's check
                plain.bind(("127.0.0.1", port))
        # A listener that binds with SO_REUSEADDR (as kumocore's do) listens alongside.
        with socket.socket() as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", node.ports["T_SMTP"]))
            listener.listen()
    finally:
        node.stop()  # never started: it lets go of its ports all the same
    for port in node.ports.values():
        with socket.socket() as plain:
            plain.bind(("127.0.0.1", port))


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
