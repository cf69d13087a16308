"""A real ``kumocore serve --workers 2`` source node transfers to an in-process target:
the admin request reaches both workers, and a source killed with SIGKILL mid-transfer
loses nothing (after its restart every message reaches the target, at least once)."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bench.common.serve_process import ServeProcess, listener_port
from kumocore.testing.node import Node
from kumocore.testing.plugin import MakeNode
from tests.support.worker_node import DownDestination, mx_dns, send

pytestmark = pytest.mark.slow

DOMAIN = "xfer.test"
CONNECTIONS, PER_CONNECTION = 4, 5
N = CONNECTIONS * PER_CONNECTION
SOURCE_POLICY = """
import os
from typing import Any
from kumocore import hookimpl

ENV = os.environ
_kumo: Any = None

@hookimpl
def kumo_init(kumo: Any) -> None:
    global _kumo
    _kumo = kumo
    var = ENV["T_DIR"]
    kumo.dns.configure_resolver(name_servers=[ENV["T_DNS"]])
    kumo.define_spool(name="data", path=f"{var}/spool/data", kind="LocalDisk")
    kumo.define_spool(name="meta", path=f"{var}/spool/meta", kind="LocalDisk")
    kumo.start_esmtp_listener(listen=f"127.0.0.1:{ENV['T_SMTP']}", relay_hosts=["127.0.0.1"])
    kumo.start_http_listener(listen=f"127.0.0.1:{ENV['T_HTTP']}")

@hookimpl
def kumo_get_egress_path_config(domain: str, egress_source: str, site_name: str) -> Any:
    # Nobody listens there: every message fails once and waits in its scheduled queue.
    return _kumo.make_egress_path(smtp_port=int(ENV["T_DEAD"]), prohibited_hosts=[],
                                  enable_tls="Disabled")
"""
# The target takes its time (0.1-3.1 s a message), so the source can be killed while
# transfers are under way.
TARGET_POLICY = """
local kumo = require 'kumo'
kumo.on('xfer_message_received', function(msg) kumo.sleep(0.1 + math.random() * 3) end)
"""


class Source(ServeProcess):
    def __init__(self, root: Path, dns: str) -> None:
        (root / "policy.py").write_text(SOURCE_POLICY)
        self.tmp = Path(tempfile.mkdtemp(prefix="kc-"))  # short AF_UNIX socket paths
        # The dead destination's port is held (bound, never listening: connections are
        # refused) for the test's length, so no parallel test can open a server there.
        self.dead = DownDestination()
        env = {"T_DIR": str(root), "T_DNS": dns, "T_DEAD": str(self.dead.port),
               "TMPDIR": str(self.tmp)}  # fmt: skip
        super().__init__(root / "policy.py", root / "kumocore.log", env, workers=2,
                         shutdown_timeout=3.0, listen_ports=["T_SMTP", "T_HTTP"])  # fmt: skip

    smtp_port = listener_port("T_SMTP")  # held (bench.common.serve_process)
    http_port = listener_port("T_HTTP")

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    async def owned(self) -> int:
        """Messages the node holds (every worker, wherever they are)."""
        status, summary = await asyncio.to_thread(self.call, "GET", "/api/admin/queue-summary/v1")
        assert status == 200, summary
        return int(summary["totals"]["messages"])


@pytest.fixture
async def source(tmp_path: Path) -> AsyncIterator[Source]:
    with mx_dns(DOMAIN) as dns:
        started = Source(tmp_path, dns.address)
        started.start()
        try:
            await started.wait_for_log("kumocore ready", timeout=60)
            yield started
        finally:
            await asyncio.to_thread(started.stop)
            started.dead.close()
            shutil.rmtree(started.tmp, ignore_errors=True)


async def _until(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def _park(source: Source) -> None:
    """Send N messages over several connections (the kernel spreads them over both
    workers) and wait until each failed its first attempt."""
    await asyncio.gather(*(send(source.smtp_port, DOMAIN, c, PER_CONNECTION)
                           for c in range(CONNECTIONS)))  # fmt: skip

    async def all_waiting() -> bool:  # the first attempts fail at once (refused)
        _, summary = await asyncio.to_thread(source.call, "GET", "/api/admin/queue-summary/v1")
        totals = summary["totals"]
        return bool(totals["messages"] == totals["scheduled"] == N)

    await _until(all_waiting, "the messages did not all fail once")


def _arrived(target: Node) -> set[str]:
    return {r["recipient"] for r in target.logs("XferIn")}


async def test_source_killed_mid_transfer_loses_nothing(
    source: Source, make_node: MakeNode
) -> None:
    await _park(source)
    target = await make_node(TARGET_POLICY)
    status, answer = await asyncio.to_thread(
        source.call, "POST", "/api/admin/xfer/v1", {"target": target.http_url, "reason": "drain"}
    )
    assert (status, answer) == (200, {"moved": N})  # both workers' messages
    await target.wait_for("XferIn", count=3, timeout=30)
    await asyncio.to_thread(source.kill9)
    before_restart = len(_arrived(target))
    assert before_restart < N, "the kill came too late to test anything"
    source.start()
    await source.wait_for_log("kumocore ready", count=2, timeout=60)

    async def all_arrived() -> bool:
        return len(_arrived(target)) == N

    await _until(all_arrived, f"only {len(_arrived(target))} of {N} arrived", timeout=60)
    expected = {f"c{c}m{n}@{DOMAIN}" for c in range(CONNECTIONS) for n in range(PER_CONNECTION)}
    assert _arrived(target) == expected
    # What was in flight at the kill was stored by the target and sent again after the
    # restart: the target answered those with the copies it had (kumocore.xfer.repeats).
    assert len(target.logs("XferIn")) == N

    async def source_empty() -> bool:
        return await source.owned() == 0

    await _until(source_empty, "the source still holds messages")
