"""Fixtures: a real loopback DNS server with the reference zones, and a resolver on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.common.dns_server import TestDnsServer, reference_zones
from kumocore.dns import Resolver


@pytest.fixture
def dns_server() -> Iterator[TestDnsServer]:
    zones = reference_zones()
    zones["nullmx.example"] = {"MX": [(0, ".")]}
    zones["no-mx.example"] = {"A": ["127.0.0.9"]}
    with TestDnsServer(zones) as server:
        yield server


@pytest.fixture
def resolver(dns_server: TestDnsServer) -> Resolver:
    # A short timeout keeps the fault-injection tests fast.
    return Resolver([dns_server.address], timeout=0.5)
