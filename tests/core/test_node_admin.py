"""``serve --workers 2``: the admin API and ``/metrics`` answer for the whole node.

A real supervisor and two workers; messages stay queued (their pool is not defined, so
routing defers them). Whichever worker the kernel hands an admin request to, the answer
covers both, and a suspension made through one applies on both — checked by asking each
worker's private socket directly.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.common.redis_server import free_port
from bench.common.smtp_client import RawSmtpClient

pytestmark = pytest.mark.slow

KUMOCORE = Path(sys.executable).with_name("kumocore")
POLICY = """
local kumo = require 'kumo'
kumo.on('init', function()
  local dir = os.getenv 'N_DIR'
  kumo.define_spool { name = 'data', path = dir .. '/spool/data', kind = 'LocalDisk' }
  kumo.define_spool { name = 'meta', path = dir .. '/spool/meta', kind = 'LocalDisk' }
  kumo.start_esmtp_listener { listen = '127.0.0.1:' .. os.getenv 'N_SMTP',
                              relay_hosts = { '127.0.0.1' } }
  kumo.start_http_listener { listen = '127.0.0.1:' .. os.getenv 'N_HTTP',
                             trusted_hosts = { '127.0.0.1' } }
end)
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config { egress_pool = 'nowhere', retry_interval = '1 hour' }
end)
"""


class Node:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.smtp_port, self.http_port = free_port(), free_port()
        (root / "policy.lua").write_text(POLICY)
        # The node's Unix sockets go under TMPDIR: a short one, as tmp_path under
        # pytest-xdist can make their paths longer than AF_UNIX allows (107 bytes).
        self.tmp = Path(tempfile.mkdtemp(prefix="kc-"))
        self.log = root / "kumocore.log"
        env = {**os.environ, "N_DIR": str(root), "N_SMTP": str(self.smtp_port),
               "N_HTTP": str(self.http_port), "TMPDIR": str(self.tmp),
               "KUMOCORE_BLOCK_PLUGINS": "hello,webhook_sink"}  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(KUMOCORE), "serve", "--policy", str(root / "policy.lua"), "--workers", "2",
                 "--shutdown-timeout", "3"], stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True)  # fmt: skip

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while "kumocore ready" not in self.log.read_text(errors="replace"):
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def sockets(self) -> list[Path]:
        return sorted(self.tmp.glob("kumocore-node-*/worker-*.sock"))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    started = Node(tmp_path)
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


def api(node: Node, method: str, path: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
    """One request on a fresh connection (so the kernel may pick either worker)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{node.http_port}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            content = json.loads(raw) if "json" in response.headers["Content-Type"] else raw
            return response.status, content, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null"), dict(exc.headers)


async def ask_worker(socket: Path, path: str) -> Any:
    connector = aiohttp.UnixConnector(path=str(socket))
    async with aiohttp.ClientSession(connector=connector) as session, \
            session.get(f"http://worker{path}") as response:  # fmt: skip
        return await response.json()


async def send_one(port: int, n: int) -> str:
    client = await RawSmtpClient.connect(port)
    try:
        await client.hello()
        _, final = await client.send_mail("s@src.test", [f"r{n}@dest.test"],
                                          f"Subject: {n}\r\n\r\nhello\r\n")  # fmt: skip
        assert final.code == 250, str(final)
        await client.command("QUIT")
        match = re.search(r"ids=(\S+)", str(final))
        assert match
        return match.group(1)
    finally:
        await client.close()


async def test_queue_summary_metrics_and_inspect_cover_both_workers(node: Node) -> None:
    ids = await asyncio.gather(*(send_one(node.smtp_port, n) for n in range(30)))
    sockets = node.sockets()
    assert len(sockets) == 2
    per_worker = [(await ask_worker(s, "/api/admin/queue-summary/v1"))["totals"]["messages"]
                  for s in sockets]  # fmt: skip
    assert sum(per_worker) == 30 and all(per_worker), f"one worker took all: {per_worker}"
    for _ in range(6):
        status, summary, headers = await asyncio.to_thread(
            api, node, "GET", "/api/admin/queue-summary/v1")
        assert status == 200 and headers["X-Kumocore-Workers"] == "2/2"
        assert summary["totals"]["messages"] == 30
        assert {q["name"] for q in summary["scheduled"]} == {"dest.test"}
        _, metrics, _ = await asyncio.to_thread(api, node, "GET", "/metrics.json")
        assert metrics["total_messages_received"]["value"]["service"]["esmtp_listener"] == 30
        _, text, _ = await asyncio.to_thread(api, node, "GET", "/metrics")
        assert b'total_messages_received{service="esmtp_listener"} 30.0\n' in text
    for message_id in ids[:6]:
        status, found, _ = await asyncio.to_thread(
            api, node, "GET", f"/api/admin/inspect-message/v1?id={message_id}")
        assert status == 200 and found["id"] == message_id


async def test_a_suspension_made_through_one_worker_holds_on_both_and_cancels_on_both(
    node: Node,
) -> None:
    status, created, _ = await asyncio.to_thread(
        api, node, "POST", "/api/admin/suspend/v1", {"domain": "dest.test", "reason": "test"})
    assert status == 200
    for socket in node.sockets():  # each worker holds the rule, under the same id
        rules = await ask_worker(socket, "/api/admin/suspend/v1")
        assert [r["id"] for r in rules] == [created["id"]]
    status, listed, _ = await asyncio.to_thread(api, node, "GET", "/api/admin/suspend/v1")
    assert [r["id"] for r in listed] == [created["id"]]
    status, _, _ = await asyncio.to_thread(
        api, node, "DELETE", "/api/admin/suspend/v1", {"id": created["id"]})
    assert status == 200
    for socket in node.sockets():
        assert await ask_worker(socket, "/api/admin/suspend/v1") == []
    status, _, _ = await asyncio.to_thread(
        api, node, "DELETE", "/api/admin/suspend/v1", {"id": created["id"]})
    assert status == 404
