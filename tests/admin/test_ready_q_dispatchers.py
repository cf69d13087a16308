"""The connections (KumoMTA's dispatchers) in ``inspect-ready-q``: their phase, detail and
per-connection outcome counts, through a running node and a real sink that answers each
recipient as its name asks (``tempfail``, ``permfail``; ``hold`` is held unanswered)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from kumocore.testing.node import SINK_HOST, Node
from kumocore.testing.plugin import MakeNode
from kumocore.testing.smtp_sink import RecordingSink, SinkState, _Handler, _SinkSMTP
from tests.support.admin_cli import run_cli

INSPECT = "/api/admin/inspect-ready-q/v1"
READY_Q = f"unspecified->{SINK_HOST}@smtp_client"
POLICY = """
local kumo = require 'kumo'
kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path {
    smtp_port = PORT, prohibited_hosts = {}, idle_timeout = '10s', connection_limit = 1,
    OPTIONS }
end)
"""
#: KumoMTA's humantime durations: ``8m 12s``, ``1s 200ms 3us 4ns``...
HUMANTIME = re.compile(r"\d+(?:years?|months?|days?|h|m|s|ms|us|ns)(?: \d+[a-z]+)*")


class HoldNamedRcpt(_Handler):
    """Answers ``hold@...`` only once released; every other recipient as usual."""

    def __init__(self, state: SinkState) -> None:
        super().__init__(state)
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:  # fmt: skip
        if address.startswith("hold@"):
            self.holding.set()
            await asyncio.wait_for(self.release.wait(), 30)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


class HoldNamedSink(RecordingSink):
    async def start(self) -> HoldNamedSink:
        self.handler = HoldNamedRcpt(self.state)
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _SinkSMTP(self.handler, hostname="sink.test", decode_data=False),
            self.host, self.port)  # fmt: skip
        self.port = self._server.sockets[0].getsockname()[1]
        return self


@pytest.fixture
async def sink() -> AsyncIterator[HoldNamedSink]:
    sink = await HoldNamedSink().start()
    yield sink
    sink.handler.release.set()
    await sink.stop()


NodeWith = Callable[[str], Any]


@pytest.fixture
def node_with(make_node: MakeNode, sink: HoldNamedSink) -> NodeWith:
    async def start(options: str = "") -> Node:
        policy = POLICY.replace("PORT", str(sink.port)).replace("OPTIONS", options)
        return await make_node(policy, sink=sink)

    return start


async def one_dispatcher(node: Node, check: Callable[[dict[str, Any]], bool],
                         timeout: float = 10.0) -> dict[str, Any]:  # fmt: skip
    """The queue's one connection, once ``check`` holds for it."""
    deadline = time.monotonic() + timeout
    while True:
        status, view = await node.admin("GET", f"{INSPECT}?queue_name={READY_Q}")
        found = view.get("dispatchers", []) if status == 200 else []
        if len(found) == 1 and check(found[0]):
            return dict(found[0])
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.05)


async def test_a_connection_counts_its_outcomes_and_shows_its_phase(
    node_with: NodeWith,
    sink: HoldNamedSink,
) -> None:
    node = await node_with()
    await node.send(recipients=["ok@dest.test", "tempfail@dest.test", "permfail@dest.test"])
    await node.wait_for("Delivery")
    await node.wait_for("TransientFailure")
    await node.wait_for("Bounce")
    idle = await one_dispatcher(node, lambda d: d["phase"] == "Idle")
    assert (idle["messages_delivered"], idle["messages_transfailed"],
            idle["messages_failed"]) == (1, 1, 1)  # fmt: skip
    assert idle["detail"] is None and idle["delivered_this_connection"] == 1

    await node.send(recipients="hold@dest.test")  # the same connection (limit 1) takes it
    await asyncio.wait_for(sink.handler.holding.wait(), 10)
    busy = await one_dispatcher(node, lambda d: d["phase"] == "DeliveringMessage")
    assert busy["session_id"] == idle["session_id"]
    assert busy["detail"] == "send msg with 1 recip(s)"
    assert (busy["messages_delivered"], busy["messages_transfailed"],
            busy["messages_failed"]) == (1, 1, 1)  # the held one has no outcome yet  # fmt: skip
    assert HUMANTIME.fullmatch(busy["age"]) and HUMANTIME.fullmatch(busy["time_in_current_phase"])
    assert 0 < busy["overall_rate_per_sec"] <= 3 / 0.001  # three outcomes over its age

    sink.handler.release.set()
    after = await one_dispatcher(node, lambda d: d["messages_delivered"] == 2)
    assert after["delivered_this_connection"] == 2 and after["phase"] == "Idle"


async def test_a_connection_waiting_for_its_connection_rate_says_so(
    node_with: NodeWith,
) -> None:
    node = await node_with("max_deliveries_per_connection = 1, max_connection_rate = '1/3s'")
    await node.send(recipients="first@dest.test")
    await node.wait_for("Delivery")
    await node.send(recipients="second@dest.test")  # its connection waits ~3 s
    waiting = await one_dispatcher(node, lambda d: d["phase"] == "ConnectionRateThrottled")
    assert waiting["messages_delivered"] == 0 and waiting["overall_rate_per_sec"] == 0.0


async def test_a_connection_limited_by_its_message_rate_says_so(node_with: NodeWith) -> None:
    node = await node_with("max_message_rate = '1/3s'")
    await node.send(recipients=["a@dest.test", "b@dest.test"])
    await node.wait_for("Delivery")
    waiting = await one_dispatcher(node, lambda d: d["phase"] == "MessageRateThrottled",
                                   timeout=5)  # fmt: skip
    assert waiting["messages_delivered"] == 1


# ---------------------------------------------------------------------- the CLI (kcli's)


async def test_cli_inspect_ready_q_prints_kclis_sections_on_request(
    node_with: NodeWith,
    sink: HoldNamedSink,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node = await node_with("max_connection_rate = '100/s'")
    endpoint = ("--endpoint", node.http_url)
    await node.send(recipients=["ok@dest.test", "permfail@dest.test"])
    await node.wait_for("Bounce")
    await node.wait_for("Delivery")
    session = (await one_dispatcher(node, lambda d: d["phase"] == "Idle"))["session_id"]

    code, out, _ = await run_cli(capsys, "inspect-ready-q", READY_Q, *endpoint)
    assert code == 0
    # 1024 deliveries per connection (the default) * 100 connections/s.
    assert out == (
        f"queue: {READY_Q}\n\negress pool:        unspecified\n"
        "egress source:      unspecified\nprotocol:           smtp_client\n"
        "watchdog threshold: 10m\n\n"
        f"mx (site: {SINK_HOST}):\n    10  {SINK_HOST}.\n\nready: 0\n\n"
        "ceilings:\n  concurrent dispatchers: 1\n    source: connection_limit\n"
        "  message rate:           1024 \N{MULTIPLICATION SIGN} 100/s = 102400/s\n"
        "    source: max_deliveries_per_connection \N{MULTIPLICATION SIGN} max_connection_rate\n"
        "  connection rate:        100/s\n    source: max_connection_rate\n"
        "\nconnections: 1\n"
    )

    code, out, _ = await run_cli(capsys, "inspect-ready-q", READY_Q, "--connections",
                                 "--config", "--sched-q", *endpoint)  # fmt: skip
    assert code == 0
    table = out[out.index("\nconnections: 1\n") : out.index("\nconfig:\n")]
    header, row, phase = table.strip("\n").splitlines()[1:4]
    assert header.split() == ["SESSION", "DELIV", "TRANS", "FAIL", "AGE", "RATE"]
    assert row.split()[:4] == [session, "1", "0", "1"] and row.endswith("/s")
    assert phase.startswith("  Idle for ")
    assert "\nscheduled queues: 0\n" in out
    assert f"\n  smtp_port = {sink.port}\n" in out
    assert out.endswith("\n  [connection_limit]\n  force_local = false\n  limit = 1\n")

    code, _, err = await run_cli(capsys, "inspect-ready-q", READY_Q, "--json", "--config",
                                 *endpoint)  # fmt: skip
    assert code == 2 and "--json cannot be used with" in err
    code, out, _ = await run_cli(capsys, "inspect-ready-q", READY_Q, "--json", *endpoint)
    view = json.loads(out)
    assert code == 0 and view["dispatchers"][0]["messages_failed"] == 1
    assert view["scheduled_queue_names"] == [] and "path_config" in view
