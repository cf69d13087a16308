"""``serve --workers 2``: a trace opened on either worker shows the SMTP sessions of both
(the worker that takes the WebSocket relays the other's trace)."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bench.common.serve_process import ServeProcess, listener_port
from tests.admin.test_trace_smtp_server import TRACED, RecordingClient

pytestmark = pytest.mark.slow

POLICY = """
import os
from kumocore import hookimpl

@hookimpl
def kumo_init(kumo):
    var = os.environ["T_DIR"]
    kumo.define_spool(name="data", path=f"{var}/spool/data", kind="LocalDisk")
    kumo.define_spool(name="meta", path=f"{var}/spool/meta", kind="LocalDisk")
    kumo.start_esmtp_listener(listen=f"127.0.0.1:{os.environ['T_SMTP']}")
    kumo.start_http_listener(listen=f"127.0.0.1:{os.environ['T_HTTP']}")

@hookimpl
def kumo_smtp_server_connection_accepted(conn_meta):
    conn_meta["worker_pid"] = os.getpid()  # which worker served the session
"""
SESSIONS = 16


class Node(ServeProcess):
    def __init__(self, root: Path) -> None:
        (root / "policy.py").write_text(POLICY)
        # Short socket paths: tmp_path can exceed what AF_UNIX allows (107 bytes).
        self.tmp = Path(tempfile.mkdtemp(prefix="kc-"))
        env = {"T_DIR": str(root), "TMPDIR": str(self.tmp)}
        super().__init__(root / "policy.py", root / "kumocore.log", env, workers=2,
                         shutdown_timeout=3.0, listen_ports=["T_SMTP", "T_HTTP"])  # fmt: skip

    smtp_port = listener_port("T_SMTP")  # held (bench.common.serve_process)
    http_port = listener_port("T_HTTP")


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    started = Node(tmp_path)
    started.start()
    try:
        await started.wait_for_log("kumocore ready", timeout=60)
        yield started
    finally:
        await asyncio.to_thread(started.stop)
        shutil.rmtree(started.tmp, ignore_errors=True)


async def session(port: int) -> str:
    """One short session on a new connection (the kernel picks the worker); returns
    the client's address."""
    client = await RecordingClient.connect(port, TRACED)
    await client.reply()
    await client.say("EHLO client.test\r\n")
    await client.say("QUIT\r\n")
    host, client_port = client.writer.get_extra_info("sockname")[:2]
    await client.close()
    return f"{host}:{client_port}"


async def test_a_trace_on_any_worker_shows_the_sessions_of_every_worker(node: Node) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{node.http_port}/api/admin/trace-smtp-server/v1"
        ws = await http.ws_connect(url)
        await ws.send_str(json.dumps({"source_addr": [TRACED]}))
        await asyncio.sleep(1.0)  # the relay from the other worker connects
        peers = [await session(node.smtp_port) for _ in range(SESSIONS)]
        closed: dict[str, int] = {}  # client address -> the pid of its worker
        while set(closed) != set(peers):
            message = await asyncio.wait_for(ws.receive(), 10)
            event = json.loads(message.data)
            if event["payload"] == "Closed":
                closed[event["conn_meta"]["received_from"]] = event["conn_meta"]["worker_pid"]
        await ws.close()
    # Every session was traced, and both workers served some (with 16 sessions, the
    # kernel putting all on one worker would be a 1 in 32768 chance).
    assert len(set(closed.values())) == 2
