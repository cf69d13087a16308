"""Egress through kumocore's own SOCKS5 proxy server (``kumocore proxy serve``, KumoMTA's
KumoProxy protocol): the node asks the proxy to BIND each source's address before it
CONNECTs, so one proxy sends from every address of its host, as a KumoMTA cluster uses
KumoProxy. Checked on what the sink saw and on the log records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kumocore.admin.metrics import registry_for, render_text
from tests.proxy.support import proxy_listener, proxy_port, running, write_policy
from tests.queue.harness import Bench


async def _bench(make_bench: Any, port: int, addresses: dict[str, str], **more: Any) -> Bench:
    pool = {"p": [{"name": name} for name in addresses]}
    bench: Bench = await make_bench(queue={"egress_pool": "p"}, pools=pool)
    for name, address in addresses.items():
        bench.runtime.kumo.define_egress_source(
            name=name, ehlo_domain="mta.test", socks5_proxy_server=f"127.0.0.1:{port}",
            socks5_proxy_source_address=address, **more)
    return bench


async def test_one_proxy_sends_each_source_from_its_own_address(
    make_bench: Any, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, proxy_listener())
    async with running(policy) as proxy:
        port = proxy_port(proxy)
        bench = await _bench(make_bench, port, {"ip-1": "127.0.10.41", "ip-2": "127.0.10.42"})
        for n in range(4):
            await bench.inject(f"r{n}@example.com")
        received = await bench.sink.wait_for(4)
        records = await bench.wait_for_records("Delivery", 4)
    assert {m.source_ip for m in received} == {"127.0.10.41", "127.0.10.42"}
    for record in records:
        source = record["source_address"]
        assert source["protocol"] == "socks5" and source["server"] == f"127.0.0.1:{port}"
        assert source["address"].split(":")[0] == {
            "ip-1": "127.0.10.41", "ip-2": "127.0.10.42"}[record["egress_source"]]


async def test_an_address_the_proxy_cannot_bind_is_a_transient_failure_and_unhealthy(
    make_bench: Any, tmp_path: Path
) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface of this host: the proxy's bind fails.
    policy = write_policy(tmp_path, proxy_listener())
    async with running(policy) as proxy:
        bench = await _bench(make_bench, proxy_port(proxy), {"ip-1": "192.0.2.1"},
                             suspend_when_proxy_unhealthy={"duration": "1h"})
        await bench.inject("r@example.com")
        [failure] = await bench.wait_for_records("TransientFailure", 1)
    assert "SOCKS5 proxy could not bind 192.0.2.1" in failure["response"]["content"]
    assert bench.sink.messages == []
    text = render_text(registry_for(bench.runtime.services)).decode()
    assert 'egress_source_connection_failures_total{kind="ProxyUnhealthy",source="ip-1"} 1' in text


async def test_without_the_bind_a_kumo_proxy_sends_from_its_own_address_and_is_refused(
    make_bench: Any, tmp_path: Path
) -> None:
    # socks5_proxy_bind_source = false is for proxies that choose the address themselves;
    # a KumoProxy then connects from its default address, which kumocore refuses to use.
    policy = write_policy(tmp_path, proxy_listener())
    async with running(policy) as proxy:
        bench = await _bench(make_bench, proxy_port(proxy), {"ip-1": "127.0.10.43"},
                             socks5_proxy_bind_source=False)
        await bench.inject("r@example.com")
        [failure] = await bench.wait_for_records("TransientFailure", 1)
    assert "not from socks5_proxy_source_address 127.0.10.43" in failure["response"]["content"]
    assert bench.sink.messages == []
