"""Fixtures: a real loopback DNS server (zones set per test) and an SPF check against it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from kumocore.dns import Resolver
from kumocore.spf import CheckHostParams, SpfResult, check_host

Check = Callable[..., Awaitable[SpfResult]]


@pytest.fixture
def dns_server() -> Iterator[TestDnsServer]:
    with TestDnsServer({}) as server:
        yield server


@pytest.fixture
def resolver(dns_server: TestDnsServer) -> Resolver:
    # A short timeout keeps the DNS failure tests fast.
    return Resolver([dns_server.address], timeout=0.5)


@pytest.fixture
def zone(dns_server: TestDnsServer) -> Callable[..., None]:
    """``zone("example.com", TXT="v=spf1 -all", A=["192.0.2.1"])`` publishes records."""

    def publish(name: str, **records: Any) -> None:
        for rtype, values in records.items():
            if isinstance(values, str):
                values = [values]
            dns_server.set_records(name, rtype, values)

    return publish


@pytest.fixture
def spf(resolver: Resolver) -> Check:
    """``await spf("example.com", "192.0.2.1", sender=..., helo=...)``."""

    async def run(domain: str, ip: str, **options: Any) -> SpfResult:
        return await check_host(resolver, CheckHostParams(domain, ip, **options))

    return run
