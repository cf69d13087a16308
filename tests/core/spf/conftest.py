"""Fixtures: a real loopback DNS server (zones set per test) and an SPF check against it;
for the end-to-end tests (here, in ``tests/core/dmarc`` and ``tests/core/arc``), a
recording sink, the Lua policy's listener and routing, and a running ``kumocore serve``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.serve_process import ServeProcess, free_port
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


def listener_init_lua(hostname: str) -> str:
    """The end-to-end policies' ``init``, a ``str.format`` template like them: the test DNS
    server, a spool, and a listener named ``hostname`` relaying for the untrusted-looking
    client on 127.0.0.5."""
    return f"""
kumo.on('init', function()
  kumo.dns.configure_resolver {{{{ name_servers = {{{{ '{{dns}}' }}}} }}}}
  kumo.define_spool {{{{ name = 'data', path = '{{spool}}/data' }}}}
  kumo.define_spool {{{{ name = 'meta', path = '{{spool}}/meta' }}}}
  kumo.start_esmtp_listener {{{{
    listen = '127.0.0.1:{{smtp_port}}',
    hostname = '{hostname}',
    relay_hosts = {{{{ '127.0.0.5' }}}},
  }}}}
end)
"""


@asynccontextmanager
async def serving(
    tmp_path: Path, policy_template: str, dns: TestDnsServer, sink: RecordingSink,
    **fields: Any,
) -> AsyncIterator[int]:
    """A real ``kumocore serve`` on ``policy_template`` (filled with the DNS server, a
    spool, its SMTP port, the sink's port and ``fields``); yields the SMTP port once it
    listens."""
    smtp_port = free_port()
    policy = tmp_path / "policy.lua"
    policy.write_text(policy_template.format(dns=dns.address, spool=tmp_path / "spool",
                                             smtp_port=smtp_port, sink_port=sink.port,
                                             **fields))  # fmt: skip
    kumo = ServeProcess(policy, tmp_path / "kumocore.log")
    kumo.start()
    try:
        await kumo.wait_for_smtp(smtp_port)
        yield smtp_port
    finally:
        kumo.stop()


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
