"""Fixtures: a real loopback DNS server (zones set per test) and an SPF check against it;
for the end-to-end tests (here and in ``tests/core/dmarc``), a recording sink and the Lua
routing that sends everything to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.sink import RecordingSink
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


#: The end-to-end policies' routing, a ``str.format`` template like them: every domain
#: goes to the recording sink on ``{sink_port}``.
ROUTE_TO_SINK_LUA = """
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config {{ retry_interval = '1h' }}
end)

kumo.on('get_egress_path_config', function(domain, egress_source, site_name)
  return kumo.make_egress_path {{
    smtp_port = {sink_port}, prohibited_hosts = {{}}, enable_tls = 'Disabled',
  }}
end)
"""


@pytest.fixture
async def sink() -> AsyncIterator[RecordingSink]:
    async with RecordingSink() as started:
        yield started
