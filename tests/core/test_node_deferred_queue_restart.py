"""``deferred_queue = true`` survives kill -9: a message the client got its 250 for is in the
RocksDB spool, in ``deferred_smtp_inject.kumomta.internal``, and a node restarted on the
same spool runs ``smtp_server_message_deferred_inject`` for it and delivers it.

A real ``kumocore serve`` process (Lua policy, RocksDB spools, local logs), a real
SIGKILL while the handler of the first message is still running, the test DNS server and
a recording sink.
"""

from __future__ import annotations

import asyncio
import smtplib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bench.common.serve_process import ServeProcess
from kumocore.logs.reader import iter_records
from kumocore.testing.dns import TestDnsServer
from kumocore.testing.smtp_sink import RecordingSink

pytestmark = pytest.mark.slow

DEFERRED = "deferred_smtp_inject.kumomta.internal"
POLICY = """
local kumo = require 'kumo'
kumo.on('init', function()
  local dir = os.getenv 'DQ_DIR'
  kumo.dns.configure_resolver { name_servers = { os.getenv 'DQ_DNS' } }
  kumo.define_spool { name = 'data', path = dir .. '/spool/data', kind = 'RocksDB' }
  kumo.define_spool { name = 'meta', path = dir .. '/spool/meta', kind = 'RocksDB' }
  kumo.configure_local_logs { log_dir = dir .. '/logs' }
  kumo.start_esmtp_listener {
    listen = '127.0.0.1:' .. os.getenv 'DQ_SMTP',
    deferred_queue = true,
    domains = { ['dest.test'] = { relay_to = true } },
  }
end)
kumo.on('smtp_server_message_deferred_inject', function(msg, conn_meta)
  local started = io.open(os.getenv 'DQ_DIR' .. '/started', 'a')
  started:write(msg:id() .. '\\n')
  started:close()
  if os.getenv 'DQ_HOLD' == '1' then
    kumo.sleep(3600) -- killed in here
  end
  msg:set_meta('tenant', 'after-restart')
end)
kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path { smtp_port = tonumber(os.getenv 'DQ_SINK'),
                                 enable_tls = 'Disabled', prohibited_hosts = {} }
end)
"""


class DeferredNode:
    def __init__(self, root: Path, dns: str, sink_port: int) -> None:
        self.root = root
        (root / "policy.lua").write_text(POLICY)
        env = {"DQ_DIR": str(root), "DQ_DNS": dns, "DQ_SINK": str(sink_port)}
        self.process = ServeProcess(root / "policy.lua", root / "kumocore.log", env,
                                    shutdown_timeout=3, listen_ports=["DQ_SMTP"])  # fmt: skip

    @property
    def smtp_port(self) -> int:  # held (bench.common.serve_process)
        return self.process.ports["DQ_SMTP"]

    async def start(self, **env: str) -> None:
        self.process.start(**env)
        await self.process.wait_for_log("kumocore ready", timeout=60)

    def started(self) -> list[str]:
        path = self.root / "started"
        return path.read_text().split() if path.exists() else []

    def records(self, kind: str) -> list[dict[str, Any]]:
        return list(iter_records(self.root / "logs", types=[kind], on_problem=lambda _: None))

    async def send(self, recipient: str) -> str:
        """One message from 127.0.0.5; the id the 250 to DATA names."""

        def send() -> str:
            with smtplib.SMTP("127.0.0.1", self.smtp_port, source_address=("127.0.0.5", 0),
                              timeout=30) as client:  # fmt: skip
                client.ehlo("injector.test")
                client.mail("sender@source.test")
                client.rcpt(recipient)
                code, reply = client.data(b"Subject: deferred\r\n\r\nbody\r\n")
                assert code == 250, (code, reply)
                return reply.decode().removeprefix("OK ids=")

        return await asyncio.to_thread(send)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[DeferredNode, RecordingSink]]:
    zones: dict[str, dict[str, Any]] = {"dest.test": {"MX": [(10, "mx.dest.test")]},
                                        "mx.dest.test": {"A": ["127.0.0.1"]}}  # fmt: skip
    dns = TestDnsServer(zones).start()
    sink = await RecordingSink().start()
    started = DeferredNode(tmp_path, dns.address, sink.port)
    try:
        yield started, sink
    finally:
        started.process.stop()
        await sink.stop()
        dns.stop()


async def test_a_message_answered_250_is_injected_after_kill_9_and_restart(
    node: tuple[DeferredNode, RecordingSink],
) -> None:
    deferred, sink = node
    await deferred.start(DQ_HOLD="1")  # every handler run hangs
    ids = [await deferred.send(f"r{i}@dest.test") for i in range(3)]
    deadline = time.monotonic() + 20
    while not deferred.started():  # the first handler is running: mid-injection
        assert time.monotonic() < deadline, deferred.process.log_text(3000)
        await asyncio.sleep(0.05)
    deferred.process.kill9()
    assert sink.messages == []

    await deferred.start()
    await sink.wait_for(3, timeout=30)
    assert sorted(m.recipient for m in sink.messages) == ["r0@dest.test", "r1@dest.test",
                                                          "r2@dest.test"]  # fmt: skip
    deferred.process.stop()  # the local logs are complete once it stopped
    rebinds = deferred.records("DeferredInjectionRebind")
    assert sorted(r["id"] for r in rebinds) == sorted(ids)
    assert {r["queue"] for r in rebinds} == {"after-restart@dest.test"}
    assert {r["queue"] for r in deferred.records("Delivery")} == {"after-restart@dest.test"}
    # Before the kill the handler had not finished: the restarted node ran it again.
    assert set(ids) <= set(deferred.started())
