"""``kumocore tsa serve`` running KumoMTA's own tsa-daemon policy (``require 'tsa'``,
``tsa_init``, ``tsa_load_shaping_data``), as processes: a kumocore node publishing to it and
subscribed to it gets its suspension; the state survives a restart through the path of
``tsa.configure_tsa_db_path``; its listener serves only its ``trusted_hosts``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.common.dns_server import TestDnsServer
from bench.common.serve_process import KUMOCORE, ServeProcess, free_port
from tests.tsa.test_daemon import TS04
from tests.tsa.test_http_and_validate import kumomta_record
from tests.tsa.tsa_fleet import (
    DOMAIN,
    MX_HOST,
    Node,
    ThrottlingSink,
    inject,
    shaping_file,
    wait_until,
)

pytestmark = pytest.mark.slow

SUSPEND_RULE = f"""
[["{DOMAIN}".automation]]
regex = "\\\\[TS04\\\\]"
action = "Suspend"
duration = "10 minutes"
"""

# KumoMTA's documented tsa_init.lua, with this test's port, paths and shaping file.
DAEMON_POLICY = """
local tsa = require 'tsa'
local kumo = require 'kumo'
kumo.on('tsa_init', function()
  tsa.start_http_listener { listen = '127.0.0.1:{port}', trusted_hosts = { '127.0.0.1', '::1' } }
  tsa.configure_tsa_db_path '{db}'
end)
local cached_load_shaping_data = kumo.memoize(kumo.shaping.load, {
  name = 'tsa_load_shaping_data', ttl = '5 minutes', capacity = 4 })
kumo.on('tsa_load_shaping_data', function()
  return cached_load_shaping_data { '{shaping}' }
end)
"""


class TsaDaemon(ServeProcess):
    """``kumocore tsa serve --policy POLICY`` (no other option: the policy says it all)."""

    def __init__(self, root: Path, shaping: Path) -> None:
        self.port = free_port()
        self.db = root / "state" / "tsa.db"
        self.db.parent.mkdir()
        policy = root / "tsa_init.lua"
        policy.write_text(
            DAEMON_POLICY.replace("{port}", str(self.port))
            .replace("{db}", str(self.db))
            .replace("{shaping}", str(shaping))
        )
        super().__init__(policy, root / "tsa.log", name="tsa-daemon")
        self.url = f"http://127.0.0.1:{self.port}"
        self.starts = 0

    def command(self) -> list[str]:
        return [str(KUMOCORE), "--log-level", "info", "tsa", "serve", "--policy", str(self.policy)]

    async def run(self) -> None:
        self.start()
        self.starts += 1
        await self.wait_for_log("kumocore tsa ready", count=self.starts)

    def stop_cleanly(self) -> None:
        self.stop()
        assert self.process is not None and self.process.returncode == 0, self.log_text(3000)

    async def actions(self) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/api/admin/tsa/v1") as r:
            assert r.status == 200, await r.text()
            actions: list[dict[str, Any]] = (await r.json())["actions"]
            return actions


@pytest.fixture
def dns() -> Iterator[TestDnsServer]:
    zones = {DOMAIN: {"MX": [(10, MX_HOST)]}, MX_HOST: {"A": ["127.0.0.1"]}}
    with TestDnsServer(zones) as server:
        yield server


@pytest.fixture
async def sink() -> AsyncIterator[ThrottlingSink]:
    started = await ThrottlingSink().start()
    yield started
    await started.stop()


@pytest.fixture
async def daemon(tmp_path: Path, sink: ThrottlingSink) -> AsyncIterator[TsaDaemon]:
    shaping = tmp_path / "shaping.toml"
    shaping.write_text(shaping_file(sink.port, SUSPEND_RULE))
    process = TsaDaemon(tmp_path, shaping)
    try:
        await process.run()
        yield process
    finally:
        process.stop()


@pytest.fixture
async def node(tmp_path: Path, dns: TestDnsServer, daemon: TsaDaemon) -> AsyncIterator[Node]:
    env = {"TSA_DNS": dns.address, "TSA_SHAPING": str(tmp_path / "shaping.toml"),
           "TSA_STORE": daemon.url}  # fmt: skip
    started = Node("node", tmp_path, env)
    try:
        started.start()
        await started.wait_ready()
        yield started
    finally:
        started.stop()


def delivered(sink: ThrottlingSink, prefix: str) -> list[str]:
    return [m.recipient for m in sink.messages if m.recipient.startswith(prefix)]


async def test_a_node_gets_the_daemons_suspension_and_it_survives_a_daemon_restart(
    daemon: TsaDaemon, node: Node, sink: ThrottlingSink
) -> None:
    await inject(node, [f"ts04@{DOMAIN}"])  # the sink answers 421 4.7.0 [TS04]

    async def applied_on_node() -> bool:
        return any(a["kind"] == "Suspend" and a["applied"] for a in await node.actions())

    seen = await wait_until(applied_on_node, 20, "the daemon's suspension applied on the node")
    [before] = await daemon.actions()
    assert before["kind"] == "Suspend" and before["domain"] == DOMAIN
    assert "shaping.toml" in before["rule"]  # the rule came through tsa_load_shaping_data
    await inject(node, [f"held{n}@{DOMAIN}" for n in range(3)])
    await asyncio.sleep(2)
    assert not delivered(sink, "held"), "the node delivered on a suspended path"

    daemon.stop_cleanly()
    saved = json.loads(daemon.db.with_name("tsa.db.state").read_text())
    assert [a["id"] for a in saved["actions"]] == [before["id"]]
    await daemon.run()  # a new process, same policy and db path
    [after] = await daemon.actions()
    assert (after["id"], after["expires"]) == (before["id"], before["expires"])
    assert any(a["id"] == before["id"] and a["applied"] for a in await node.actions())
    await asyncio.sleep(1)
    assert not delivered(sink, "held"), "the node delivered after the daemon restarted"
    print(
        f"\nTSA figures: the daemon's suspension applied on the node {seen:.2f}s after the "
        "injection that drew the 421"
    )


async def test_the_policy_listener_refuses_a_host_outside_trusted_hosts(
    daemon: TsaDaemon,
) -> None:
    record = kumomta_record(response=TS04, recipient=[f"u@{DOMAIN}"], queue=DOMAIN,
                            site=f"src->{MX_HOST}@smtp_client")  # fmt: skip
    untrusted = aiohttp.TCPConnector(local_addr=("127.0.0.5", 0))
    async with aiohttp.ClientSession(connector=untrusted) as http:
        async with http.get(f"{daemon.url}/tsa/status") as response:
            assert response.status == 401
            assert await response.json() == {"error": "127.0.0.5 is not a trusted host"}
        async with http.post(f"{daemon.url}/publish_log_v1", json=record) as response:
            assert response.status == 401
    assert await daemon.actions() == []  # the refused record made nothing
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{daemon.url}/tsa/status") as response:
            assert (response.status, await response.text()) == (200, "TSA Daemon OK")
        async with http.post(f"{daemon.url}/publish_log_v1", json=record) as response:
            assert response.status == 200
    await wait_until(lambda: _has_actions(daemon), 5, "the trusted host's record to act")


async def _has_actions(daemon: TsaDaemon) -> bool:
    return bool(await daemon.actions())
