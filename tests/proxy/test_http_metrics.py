"""proxy.start_http_listener: KumoProxy's counters on /metrics and /metrics.json, the
health check, and only for the listener's trusted_hosts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from bench.common.ports import free_port
from tests.proxy.support import (
    CLIENT_ADDRESS,
    bind_and_connect,
    closed,
    connect,
    echo_server,
    no_auth,
    proxy_listener,
    proxy_port,
    running,
    write_policy,
)


def policy_with_http(tmp_path: Path, port: int) -> Path:
    http = (f"proxy.start_http_listener {{ listen = '127.0.0.1:{port}', "
            "trusted_hosts = { '127.0.0.1' } }")  # fmt: skip
    return write_policy(tmp_path, proxy_listener("max_connections = 1") + "\n" + http)


async def test_metrics_count_connections_and_bytes(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    async with echo_server() as echo, running(policy_with_http(tmp_path, port)) as d:
        stream = await connect(proxy_port(d))
        await no_auth(stream)
        await bind_and_connect(stream, "127.0.10.11", echo.port)
        stream[1].write(b"twelve bytes")
        assert await asyncio.wait_for(stream[0].readexactly(12), 10) == b"twelve bytes"
        refused = await connect(proxy_port(d))  # past max_connections = 1
        assert await closed(refused[0])
        stream[1].close()
        metrics = d.listeners[0].metrics
        for _ in range(100):
            if metrics.active == 0:
                break
            await asyncio.sleep(0.02)
        listener = f"127.0.0.1:{proxy_port(d)}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                assert response.status == 200
                text = await response.text()
            async with http.get(f"http://127.0.0.1:{port}/metrics.json") as response:
                body = await response.json()
            async with http.get(f"http://127.0.0.1:{port}/proxy/status") as response:
                assert await response.text() == "KumoProxy OK"
            async with http.get(f"http://127.0.0.1:{port}/api-docs/openapi.json") as response:
                paths = set((await response.json())["paths"])
            assert {"/metrics", "/metrics.json", "/proxy/status", "/rapidoc",
                    "/api/admin/set_diagnostic_log_filter/v1"} <= paths  # fmt: skip
        label = f'{{listener="{listener}"}}'
        assert f"proxy_connections_accepted_total{label} 1.0" in text
        assert f"proxy_connections_completed_total{label} 1.0" in text
        assert f"proxy_connections_refused_total{label} 1.0" in text
        assert f"proxy_bytes_client_to_dest_total{label} 12.0" in text
        assert f"proxy_active_connections{label} 0.0" in text
        destination = f'destination="127.0.0.1:{echo.port}",listener="{listener}"'
        assert f"proxy_outbound_connections_total{{{destination}}} 1.0" in text
        assert body["proxy_bytes_dest_to_client_total"]["value"] == {"listener": {listener: 12}}
        assert body["proxy_connections_failed_total"]["value"] == {"listener": {listener: 0}}


async def test_metrics_refuse_a_peer_outside_trusted_hosts(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    async with running(policy_with_http(tmp_path, port)):
        connector = aiohttp.TCPConnector(local_addr=(CLIENT_ADDRESS, 0))
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            assert response.status == 401
            body = await response.json()
        assert body == {"error": f"{CLIENT_ADDRESS} is not a trusted host"}
