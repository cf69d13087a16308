"""Fixtures for the reliability tests: a test Internet (DNS + recording sink) shared by the
session, and real ``kumocore serve`` processes (bench/reliability/crash.py) per module or
per test."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.reliability.crash import KumoServer, ServerSpec, World

StartKumo = Callable[..., KumoServer]
_tags = itertools.count(1)


def unique(prefix: str = "t") -> str:
    """A tag no other test uses: recipients carry it so the shared sink can tell them apart."""
    return f"{prefix}{next(_tags)}"


@pytest.fixture(scope="session")
def world() -> Iterator[World]:
    with World() as test_internet:
        yield test_internet


def _starter(world: World, make_dir: Callable[[], Path]) -> tuple[StartKumo, list[KumoServer]]:
    servers: list[KumoServer] = []

    def start(*, ready: bool = True, **options: Any) -> KumoServer:
        spec = ServerSpec(dns=world.dns.address, sink_port=world.sink.port, **options)
        server = KumoServer(spec, make_dir())
        servers.append(server)
        return server.start() if ready else server

    return start, servers


def _stop(servers: list[KumoServer]) -> None:
    # SIGKILL: a graceful stop costs a second or more each (egress connections idle out),
    # and what a test needed from the server is checked by then.
    for server in servers:
        server.kill()


@pytest.fixture(scope="module")
def start_module_kumo(
    world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartKumo]:
    """``start_module_kumo(listener={...}, ...)``: servers that live for the module."""
    start, servers = _starter(world, lambda: tmp_path_factory.mktemp("kumo"))
    yield start
    _stop(servers)


@pytest.fixture
def start_kumo(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartKumo]:
    """``start_kumo(...)``: a server for one test (``ready=False`` to only write its policy)."""
    start, servers = _starter(world, lambda: tmp_path_factory.mktemp("kumo"))
    yield start
    _stop(servers)


@pytest.fixture(scope="module")
def kumo(start_module_kumo: StartKumo) -> KumoServer:
    """A default server (relay_hosts 127.0.0.1, relay_to relay.test) for the module."""
    return start_module_kumo()
