"""``serve --workers 2``: a ready-queue suspension and a configuration epoch bump asked of
the node's public listener apply on both workers.

A real supervisor and two workers deliver through the test DNS server to a real SMTP sink.
Each worker is also asked directly, over its private socket, what it holds.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.common.serve_process import ServeProcess
from bench.common.smtp_client import RawSmtpClient
from kumocore.testing.dns import TestDnsServer
from kumocore.testing.smtp_sink import RecordingSink

pytestmark = pytest.mark.slow

PATH = "/api/admin/suspend-ready-q/v1"
READY_Q = "unspecified->mx.dest.test@smtp_client"
POLICY = """
local kumo = require 'kumo'
-- Each evaluation of the policy file (at start, and on each epoch bump) leaves a line.
local f = io.open(os.getenv 'RQ_DIR' .. '/loads', 'a')
f:write('loaded\\n')
f:close()
kumo.on('init', function()
  local dir = os.getenv 'RQ_DIR'
  kumo.dns.configure_resolver { name_servers = { os.getenv 'RQ_DNS' } }
  kumo.define_spool { name = 'data', path = dir .. '/spool/data', kind = 'LocalDisk' }
  kumo.define_spool { name = 'meta', path = dir .. '/spool/meta', kind = 'LocalDisk' }
  kumo.start_esmtp_listener { listen = '127.0.0.1:' .. os.getenv 'RQ_SMTP',
                              relay_hosts = { '127.0.0.1' } }
  kumo.start_http_listener { listen = '127.0.0.1:' .. os.getenv 'RQ_HTTP',
                             trusted_hosts = { '127.0.0.1' } }
end)
kumo.on('smtp_server_message_received', function(msg)
  if tostring(msg:recipient()):find('^hold') then
    kumo.api.admin.suspend_ready_q.suspend {
      name = 'unspecified->mx.dest.test@smtp_client', reason = 'policy', duration = '1h' }
  end
end)
kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path { smtp_port = tonumber(os.getenv 'RQ_SINK'),
                                 enable_tls = 'Disabled', prohibited_hosts = {} }
end)
"""


class Workers:
    def __init__(self, root: Path, dns: str, sink_port: int) -> None:
        self.root = root
        (root / "policy.lua").write_text(POLICY)
        (root / "loads").write_text("")
        # The node's Unix sockets go under a short TMPDIR (AF_UNIX paths are limited).
        self.tmp = Path(tempfile.mkdtemp(prefix="kc-"))
        env = {"RQ_DIR": str(root), "RQ_DNS": dns, "RQ_SINK": str(sink_port),
               "TMPDIR": str(self.tmp)}  # fmt: skip
        self.process = ServeProcess(root / "policy.lua", root / "kumocore.log", env,
                                    workers=2, shutdown_timeout=3,
                                    listen_ports=["RQ_SMTP", "RQ_HTTP"])  # fmt: skip

    @property
    def smtp_port(self) -> int:  # held (bench.common.serve_process)
        return self.process.ports["RQ_SMTP"]

    @property
    def http_port(self) -> int:
        return self.process.ports["RQ_HTTP"]

    def loads(self) -> int:
        return (self.root / "loads").read_text().count("loaded")

    def sockets(self) -> list[Path]:
        return sorted(self.tmp.glob("kumocore-node-*/worker-*.sock"))

    async def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any, Any]:
        return await asyncio.to_thread(self._api, method, path, body)

    def _api(self, method: str, path: str, body: Any) -> tuple[int, Any, Any]:
        """One request on a fresh connection, so the kernel may pick either worker."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", method=method,
            data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else raw, response.headers
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null"), exc.headers


@asynccontextmanager
async def running_node(
    tmp_path: Path, policy: str | None = None
) -> AsyncIterator[tuple[Workers, RecordingSink]]:
    """Two workers delivering ``dest.test`` to a recording sink (``policy``: another
    policy text in place of :data:`POLICY`)."""
    zones: dict[str, dict[str, Any]] = {"dest.test": {"MX": [(10, "mx.dest.test")]},
                                        "mx.dest.test": {"A": ["127.0.0.1"]}}
    dns = TestDnsServer(zones).start()
    sink = await RecordingSink().start()
    workers = Workers(tmp_path, dns.address, sink.port)
    if policy is not None:
        (tmp_path / "policy.lua").write_text(policy)
    try:
        workers.process.start()
        await workers.process.wait_for_log("kumocore ready", timeout=60)
        yield workers, sink
    finally:
        workers.process.stop()
        await sink.stop()
        dns.stop()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[Workers, RecordingSink]]:
    async with running_node(tmp_path) as started:
        yield started


async def ask_worker(socket: Path, path: str) -> Any:
    connector = aiohttp.UnixConnector(path=str(socket))
    async with aiohttp.ClientSession(connector=connector) as session, \
            session.get(f"http://worker{path}") as response:  # fmt: skip
        return await response.json()


async def send(port: int, count: int, local_part: str = "r") -> None:
    """``count`` messages on as many connections, so both workers receive some."""

    async def one(n: int) -> None:
        client = await RawSmtpClient.connect(port)
        try:
            await client.hello()
            _, final = await client.send_mail("s@src.test", [f"{local_part}{n}@dest.test"],
                                              f"Subject: {n}\r\n\r\nhello\r\n")  # fmt: skip
            assert final.code == 250, str(final)
        finally:
            await client.close()

    await asyncio.gather(*(one(n) for n in range(count)))


async def test_a_ready_queue_suspended_through_one_worker_holds_on_both_until_cancelled(
    node: tuple[Workers, RecordingSink],
) -> None:
    workers, sink = node
    status, created, headers = await workers.api(
        "POST", PATH, {"name": READY_Q, "reason": "blocked", "duration": "1h"})
    assert status == 200 and headers["X-Kumocore-Workers"] == "2/2", created
    for socket in workers.sockets():  # each worker holds it, under the same id
        assert [s["id"] for s in await ask_worker(socket, PATH)] == [created["id"]]
    await send(workers.smtp_port, 20)
    await asyncio.sleep(2.0)
    assert sink.messages == []
    held = [(await ask_worker(s, "/api/admin/queue-summary/v1"))["totals"]["messages"]
            for s in workers.sockets()]  # fmt: skip
    assert sum(held) == 20 and all(held), f"one worker took all: {held}"
    status, view, headers = await workers.api(
        "GET", f"/api/admin/inspect-ready-q/v1?queue_name={READY_Q}", None)
    assert status == 200 and headers["X-Kumocore-Workers"] == "2/2", view
    assert (view["state"]["ready_count"], view["state"]["connection_count"]) == (20, 0)
    assert view["state"]["suspended"]["id"] == created["id"]
    status, states, _ = await workers.api("GET", "/api/admin/ready-q-states/v1", None)
    assert (status, states) == (200, {"states_by_ready_queue": {}})  # held, not limited
    status, listed, _ = await workers.api("GET", PATH, None)
    assert [(s["id"], s["name"]) for s in listed] == [(created["id"], READY_Q)]
    status, cancelled, headers = await workers.api("DELETE", PATH, {"id": created["id"]})
    assert (status, cancelled) == (200, {"id": created["id"]})
    await sink.wait_for(20, timeout=30)
    for socket in workers.sockets():
        assert await ask_worker(socket, PATH) == []
    status, answer, _ = await workers.api("DELETE", PATH, {"id": created["id"]})
    assert status == 404 and "error" in answer


async def test_a_malformed_request_is_refused_once_with_a_json_error(
    node: tuple[Workers, RecordingSink],
) -> None:
    workers, _ = node
    status, answer, _ = await workers.api("POST", PATH, {"name": READY_Q})
    assert status == 400 and "reason" in answer["error"]
    for socket in workers.sockets():
        assert await ask_worker(socket, PATH) == []


async def test_a_config_epoch_bump_reaches_both_workers(
    node: tuple[Workers, RecordingSink],
) -> None:
    workers, _ = node
    before = workers.loads()
    status, answer, headers = await workers.api("POST", "/api/admin/bump-config-epoch", None)
    assert (status, answer) == (200, b"") and headers["X-Kumocore-Workers"] == "2/2"
    deadline = time.monotonic() + 15
    while workers.loads() < before + 2:  # each worker evaluated its policy again
        assert time.monotonic() < deadline, (before, workers.loads())
        await asyncio.sleep(0.1)


async def test_a_suspension_made_by_the_policy_in_one_worker_holds_on_both(
    node: tuple[Workers, RecordingSink],
) -> None:
    workers, sink = node
    await send(workers.smtp_port, 1, local_part="hold")
    held = [[(s["id"], s["name"], s["reason"]) for s in await ask_worker(socket, PATH)]
            for socket in workers.sockets()]  # fmt: skip
    assert len(held) == 2 and held[0] == held[1] and len(held[0]) == 1, held
    suspension, name, reason = held[0][0]
    assert (name, reason) == (READY_Q, "policy")
    await send(workers.smtp_port, 10)
    await asyncio.sleep(2.0)
    assert sink.messages == []
    status, _, _ = await workers.api("DELETE", PATH, {"id": suspension})
    assert status == 200
    await sink.wait_for(11, timeout=30)
