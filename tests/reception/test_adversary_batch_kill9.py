"""kill -9 in the middle of a batch's delivery (real ``kumocore serve``, RocksDB spools).

One message of four recipients (``BatchByDomain``) goes out two recipients per
transaction (``max_recipients_per_batch = 2``) over one session. The MX takes the first
transaction, then never answers the second one's dot; the node is killed there and
restarted against an MX that now answers. The recipients of the first transaction have
their Delivery logged and must not be sent again; those of the second (no outcome
logged) are sent again, and every recipient ends up with a Delivery record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bench.common.serve_process import ServeProcess, free_port
from bench.common.smtp_client import RawSmtpClient
from kumocore.logs.reader import iter_records
from tests.support import rcpt_sink
from tests.support.rcpt_sink import RcptSink

pytestmark = pytest.mark.slow

RECIPIENTS = [f"r{n}@example.com" for n in range(4)]

POLICY = """
local kumo = require 'kumo'

kumo.on('init', function()
  kumo.define_spool {{ name = 'data', path = '{spool}/data', kind = 'RocksDB' }}
  kumo.define_spool {{ name = 'meta', path = '{spool}/meta', kind = 'RocksDB' }}
  kumo.configure_local_logs {{ log_dir = '{logs}', max_segment_duration = '100ms' }}
  kumo.start_esmtp_listener {{
    listen = '127.0.0.1:{smtp_port}', relay_hosts = {{ '127.0.0.1' }},
    batch_handling = 'BatchByDomain',
  }}
end)

kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config {{
    retry_interval = '2s',
    protocol = {{ smtp = {{ mx_list = {{ '127.0.0.1' }} }} }},
  }}
end)

kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path {{
    smtp_port = {mx_port}, prohibited_hosts = {{}}, enable_tls = 'Disabled',
    max_recipients_per_batch = 2, data_dot_timeout = '1h',
  }}
end)
"""


class _StallingSession(rcpt_sink._Session):
    async def data(self) -> str:
        reply = await super().data()
        sink = self.sink
        assert isinstance(sink, StallingSink)
        if sink.stall and len(sink.transactions) > 1:
            await sink.released.wait()  # the body is in; no reply before the kill
        return reply


@dataclass
class StallingSink(RcptSink):
    """An RcptSink that, while ``stall`` is set, answers the dot of no transaction
    after the first until ``released`` is set."""

    stall: bool = True
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            writer.write(b"220 rcpt-sink.test ESMTP\r\n")
            await _StallingSession(self, self.connections, reader, writer).run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[ServeProcess, int, Path, int]]:
    smtp_port, mx_port = free_port(), free_port()
    logs = tmp_path / "logs"
    policy = tmp_path / "policy.lua"
    policy.write_text(
        POLICY.format(spool=tmp_path / "spool", logs=logs, smtp_port=smtp_port, mx_port=mx_port)
    )
    kumo = ServeProcess(policy, tmp_path / "kumocore.log")
    yield kumo, smtp_port, logs, mx_port
    kumo.stop()


async def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _deliveries(logs: Path) -> list[Any]:
    if not logs.exists():
        return []
    return [record["recipient"] for record in iter_records(logs, types={"Delivery"})]


async def test_kill_9_between_two_transactions_of_a_batch_resends_only_the_unlogged(
    deployment: tuple[ServeProcess, int, Path, int],
) -> None:
    kumo, smtp_port, logs, mx_port = deployment
    async with StallingSink(port=mx_port) as sink:
        kumo.start()
        await kumo.wait_for_smtp(smtp_port)
        client = await RawSmtpClient.connect(smtp_port)
        await client.hello()
        _, final = await client.send_mail(
            "s@src.test", RECIPIENTS, "Subject: batch\r\n\r\nbody\r\n"
        )
        assert final.code == 250, str(final)
        await _wait(lambda: len(sink.transactions) == 2, 30, "the second transaction")
        await _wait(
            lambda: _deliveries(logs) == [RECIPIENTS[:2]],
            30,
            "the first transaction's Delivery record",
        )
        await client.close()
        kumo.kill9()

        sink.stall = False
        sink.released.set()
        kumo.start()
        await kumo.wait_for_smtp(smtp_port)
        await _wait(lambda: len(_deliveries(logs)) == 2, 30, "the second Delivery record")
    assert _deliveries(logs) == [RECIPIENTS[:2], RECIPIENTS[2:]]
    sent = [t.recipients for t in sink.transactions]
    # r2 and r3 twice (their reply never came before the kill: at-least-once), r0 and
    # r1 once: their Delivery was logged, so the spool no longer named them.
    assert sent == [RECIPIENTS[:2], RECIPIENTS[2:], RECIPIENTS[2:]], sent
