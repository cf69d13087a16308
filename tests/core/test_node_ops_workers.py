"""``serve --workers 2``: the diagnostic log filter reaches every worker, and an abort of a
ready queue's connection reaches the worker that runs it, whichever worker the kernel
hands the request to. The aborted message is delivered once, and logged once.

A real supervisor and two workers, a real test DNS server and a sink that holds the first
transaction (so one connection sits mid-transaction until it is aborted).
"""

from __future__ import annotations

import asyncio
import json
import re
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
from kumocore.logs.reader import iter_records
from tests.support.holding_sink import HoldingSink
from tests.support.worker_node import mx_dns, send

pytestmark = pytest.mark.slow

DOMAIN = "abort.test"
POLICY = """
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
    kumo.configure_local_logs(log_dir=f"{var}/logs")
    kumo.start_esmtp_listener(listen=f"127.0.0.1:{ENV['T_SMTP']}", relay_hosts=["127.0.0.1"])
    kumo.start_http_listener(listen=f"127.0.0.1:{ENV['T_HTTP']}")

@hookimpl
def kumo_get_egress_path_config(domain: str, egress_source: str, site_name: str) -> Any:
    return _kumo.make_egress_path(smtp_port=int(ENV["T_SINK"]), prohibited_hosts=[],
                                  enable_tls="Disabled")
"""


class Node(ServeProcess):
    def __init__(self, root: Path, dns: str, sink_port: int) -> None:
        (root / "policy.py").write_text(POLICY)
        self.logs = root / "logs"
        # Short socket paths: tmp_path can exceed what AF_UNIX allows (107 bytes).
        self.tmp = Path(tempfile.mkdtemp(prefix="kc-"))
        env = {"T_DIR": str(root), "T_DNS": dns, "T_SINK": str(sink_port),
               "TMPDIR": str(self.tmp)}  # fmt: skip
        super().__init__(root / "policy.py", root / "kumocore.log", env, workers=2,
                         shutdown_timeout=3.0, listen_ports=["T_SMTP", "T_HTTP"])  # fmt: skip

    smtp_port = listener_port("T_SMTP")  # held (bench.common.serve_process)
    http_port = listener_port("T_HTTP")

    def diagnostics(self, event: str) -> list[dict[str, Any]]:
        """The JSON diagnostic lines of ``event`` in the log so far."""
        found = []
        for line in self.log_text().splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                found.append(json.loads(line))
        return found

    async def wait_diagnostics(self, event: str, count: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 20
        while len(lines := self.diagnostics(event)) < count:
            assert time.monotonic() < deadline, self.log_text()
            await asyncio.sleep(0.1)
        return lines


def post(node: Node, path: str, body: Any) -> tuple[int, str, dict[str, str]]:
    """One POST on a fresh connection (so the kernel may pick either worker)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{node.http_port}{path}", method="POST",
        data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


@pytest.fixture
async def sink() -> AsyncIterator[HoldingSink]:
    started = await HoldingSink().start()
    yield started
    started.handler.release.set()
    await started.stop()


@pytest.fixture
async def node(tmp_path: Path, sink: HoldingSink) -> AsyncIterator[Node]:
    with mx_dns(DOMAIN) as dns:
        started = Node(tmp_path, dns.address, sink.port)
        started.start()
        try:
            await started.wait_for_log("kumocore ready", timeout=60)
            yield started
        finally:
            await asyncio.to_thread(started.stop)
            shutil.rmtree(started.tmp, ignore_errors=True)


async def test_log_filter_applies_in_every_worker_and_abort_finds_the_right_one(
    node: Node, sink: HoldingSink
) -> None:
    status, text, headers = post(node, "/api/admin/set_diagnostic_log_filter/v1",
                                 {"filter": "kumod=debug"})  # fmt: skip
    assert (status, text, headers["X-Kumocore-Workers"]) == (200, "", "2/2")
    applied = await node.wait_diagnostics("diagnostic log filter applied", 2)
    assert len({line["pid"] for line in applied}) == 2  # each worker took it

    await send(node.smtp_port, DOMAIN, 0, 1)
    await asyncio.wait_for(sink.handler.holding.wait(), 20)
    [started] = await node.wait_diagnostics("ready queue connection started", 1)
    queue, session = started["queue"], started["session_id"]
    assert re.fullmatch(r"unspecified->.+@smtp_client", queue)

    bogus = {"queue_name": queue, "session_id": "00000000-0000-0000-0000-000000000000"}
    status, text, headers = post(node, "/api/admin/abort-ready-q-conn/v1", bogus)
    assert status == 404 and headers["X-Kumocore-Workers"] == "2/2"  # no worker had it
    assert "no matching dispatcher" in json.loads(text)["error"]

    body = {"queue_name": queue, "session_id": session}
    status, text, _ = post(node, "/api/admin/abort-ready-q-conn/v1", body)
    assert (status, text) == (200, f"aborted {session}")

    # Back to its scheduled queue with KumoMTA's jitter (0-59 s), then delivered.
    await sink.wait_for(1, timeout=80)
    await asyncio.to_thread(node.stop)  # finishes the log segments; the sink keeps serving
    records = list(iter_records(node.logs))
    deliveries = [r for r in records if r["type"] == "Delivery"]
    assert [r["recipient"] for r in deliveries] == [f"c0m0@{DOMAIN}"]
    assert [r for r in records if r["type"] in ("TransientFailure", "Bounce")] == []
    delayed = [r["response"]["content"] for r in records if r["type"] == "Delayed"]
    assert all(text.startswith("Context: DispatcherDrop. ") for text in delayed)
    assert len(delayed) <= 1  # none when the jitter came out as 0 s
    assert [m.recipient for m in sink.messages] == [f"c0m0@{DOMAIN}"]
    assert sink.state.connections == 2  # the aborted connection and the retry
