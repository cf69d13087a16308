"""The dispatcher progress watchdog (``dispatcher_progress_watchdog_timeout``) on a real
node read back from its local log files: a connection that makes no progress for the
threshold is aborted, its message goes back to its scheduled queue with KumoMTA's
``Delayed`` record (``451 4.4.1 dispatcher watchdog aborted task; phase=...``, the
connection's ``session_id``) and goes out on a later attempt;
``dispatcher_watchdog_aborted_total`` counts the aborts; a healthy path is never aborted.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from kumocore.queue import delays as delays_module
from kumocore.testing.smtp_sink import RecordingSink, _Handler, _SinkSMTP
from tests.queue.delayed_support import humantime_seconds, policy, records, start
from tests.queue.delayed_support import wait_for_records as wait_for_log

SEEN = """
kumo.on('requeue_message', function(msg, response, context, increment, delay)
  msg:set_meta('seen', string.format('%s|%s|%s|%s', response, table.concat(context, ','),
    tostring(increment), tostring(delay)))
end)"""

#: A custom_lua sender whose first send never returns (until cancelled); later ones work.
WEDGED_LUA = """
local sends = 0
kumo.on('make.wedge', function(domain, tenant, campaign)
  local sender = {}
  function sender:send(msg)
    sends = sends + 1
    if sends == 1 then kumo.sleep(3600) end
    return 'taken on send ' .. sends
  end
  return sender
end)
kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path { connection_limit = 1,
    dispatcher_progress_watchdog_timeout = '1s' }
end)"""
LUA_QUEUE = "protocol = { custom_lua = { constructor = 'make.wedge' } }"

#: The SMTP path: every command timeout 30 s, the watchdog 1 s.
SMTP_PATH = """
kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path {{ smtp_port = {port}, prohibited_hosts = {{}},
    idle_timeout = '{idle}', dispatcher_progress_watchdog_timeout = '1s',
    mail_from_timeout = '30s', rcpt_to_timeout = '30s', data_timeout = '30s',
    data_dot_timeout = '30s' }}
end)"""

_WEDGED = re.compile(
    r'dispatcher watchdog aborted task; phase=(?P<phase>\w+) detail=(?P<detail>None|"[^"]*") '
    r"session=(?P<session>[0-9a-f-]{36}) age=(?P<age>[\w ]+) time_in_phase=(?P<stalled>[\w ]+)"
)


def _wedged(record: dict[str, Any]) -> re.Match[str]:
    """The watchdog's parts of a Delayed record; fails unless it has KumoMTA's shape."""
    response = record["response"]
    assert (response["code"], response["enhanced_code"]) == (
        451,
        {"class": 4, "subject": 4, "detail": 1},
    )
    match = _WEDGED.fullmatch(response["content"])
    assert match is not None, response["content"]
    return match


async def _metric(node: Any, name: str) -> dict[str, float]:
    """The samples of ``name`` on the node's /metrics, by their labels' text."""
    status, text = await node.admin("GET", "/metrics")
    assert status == 200
    found = re.findall(rf"^{name}\{{(.*)\}} (\S+)$", text, re.M)
    return {labels: float(value) for labels, value in found}


async def test_a_wedged_custom_lua_send_is_aborted_logged_and_delivered_on_a_later_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delays_module, "drop_delay", lambda: 0)  # KumoMTA's jitter: 0..59
    logs = tmp_path / "logs"
    node = await start(tmp_path, policy(logs, extra=WEDGED_LUA + SEEN, queue=LUA_QUEUE))
    try:
        sent_at = time.monotonic()
        await node.send(recipients="victim@wedge.example.com")
        [delivery] = await wait_for_log(logs, "Delivery", timeout=15)
        took = time.monotonic() - sent_at
        [path] = node.runtime.services.queues.paths.values()
        samples = await _metric(node, "dispatcher_watchdog_aborted_total")
        connections = await _metric(node, "connection_count")
    finally:
        await node.stop()
    # The connection gauge names the path's protocol too (it said smtp_client for all),
    # beside the protocol's sum and the SMTP listener's series.
    assert sorted(connections) == sorted([f'service="lua:{path.key.name}"', 'service="lua"',
                                          'service="esmtp_listener"'])  # fmt: skip
    [delayed] = records(logs, "Delayed")
    wedged = _wedged(delayed)
    assert (wedged["phase"], wedged["detail"]) == ("DeliveringMessage", '"lua: send"')
    # Aborted once it had made no progress for the threshold (1 s), not much later.
    stalled = humantime_seconds(wedged["stalled"])
    assert 1.0 <= stalled < 4.0 and humantime_seconds(wedged["age"]) >= stalled
    assert took < 10.0  # the send would have slept an hour
    assert delayed["session_id"] == wedged["session"]
    assert delayed["queue"] == "wedge.example.com" and delayed["site"] == path.key.name
    assert delayed["egress_source"] == "unspecified" and delayed["delivery_protocol"] == "Lua"
    # The later attempt: no attempt counted for the aborted one, requeue_message told why.
    assert delivery["response"]["content"] == "taken on send 2"
    assert delivery["num_attempts"] == 0
    assert delivery["meta"]["seen"] == (
        f"{delayed['response']['code']} 4.4.1 {delayed['response']['content']}"
        "|DispatcherDrop,LoggedTransientFailure|false|nil"
    )
    assert records(logs, "TransientFailure") == []
    assert samples == {f'service="lua:{path.key.name}"': 1.0}


class StallFirstData(_Handler):
    """Takes the first message's body but answers the final dot only when released (or
    after 30 s): the connection sits mid-DATA with every command timeout still far off."""

    def __init__(self, state: Any) -> None:
        super().__init__(state)
        self.stalled = asyncio.Event()
        self.release = asyncio.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not self.stalled.is_set():
            self.stalled.set()
            await asyncio.wait_for(self.release.wait(), 30)
        return await super().handle_DATA(server, session, envelope)


class StallingSink(RecordingSink):
    async def start(self) -> StallingSink:
        self.handler = StallFirstData(self.state)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _SinkSMTP(self.handler, hostname="sink.test", decode_data=False),
            self.host, self.port)  # fmt: skip
        self.port = self._server.sockets[0].getsockname()[1]
        return self


@pytest.fixture
async def stalling_sink() -> AsyncIterator[StallingSink]:
    sink = await StallingSink().start()
    yield sink
    sink.handler.release.set()
    await sink.stop()


async def test_an_smtp_connection_stalled_mid_data_is_aborted_before_its_command_timeout(
    tmp_path: Path, stalling_sink: StallingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delays_module, "drop_delay", lambda: 0)
    logs = tmp_path / "logs"
    extra = SMTP_PATH.format(port=stalling_sink.port, idle="200ms")
    node = await start(tmp_path, policy(logs, extra=extra), sink=stalling_sink)
    try:
        await node.send(recipients="stuck@example.com")
        await asyncio.wait_for(stalling_sink.handler.stalled.wait(), 10)
        stalled_at = time.monotonic()
        [delayed] = await wait_for_log(logs, "Delayed", timeout=10)
        aborted_after = time.monotonic() - stalled_at
        [delivery] = await wait_for_log(logs, "Delivery", timeout=10)
        samples = await _metric(node, "dispatcher_watchdog_aborted_total")
        [path] = node.runtime.services.queues.paths.values()
    finally:
        await node.stop()
    wedged = _wedged(delayed)
    assert (wedged["phase"], wedged["detail"]) == (
        "DeliveringMessage",
        '"send msg with 1 recip(s)"',
    )
    assert 1.0 <= humantime_seconds(wedged["stalled"]) < 4.0
    assert aborted_after < 10.0  # the data_dot_timeout (30 s) never came into it
    assert delayed["session_id"] == wedged["session"] and delayed["site"] == path.key.name
    assert delayed["delivery_protocol"] == "ESMTP"
    assert delivery["num_attempts"] == 0 and records(logs, "TransientFailure") == []
    assert samples == {f'service="smtp_client:{path.key.name}"': 1.0}


async def test_a_healthy_path_with_a_short_watchdog_is_never_aborted(tmp_path: Path) -> None:
    # Each message takes a fraction of the 1 s threshold; between bursts the connection
    # idles longer than the threshold, within its idle_timeout.
    logs = tmp_path / "logs"
    sink = await RecordingSink().start()
    extra = SMTP_PATH.format(port=sink.port, idle="3s")
    node = await start(tmp_path, policy(logs, extra=extra), sink=sink)
    try:
        for burst in range(2):
            await node.send(recipients=[f"r{burst}-{i}@example.com" for i in range(40)])
            await sink.wait_for(40 * (burst + 1), timeout=20)
            await asyncio.sleep(1.5)  # idle past the threshold
        samples = await _metric(node, "dispatcher_watchdog_aborted_total")
        [path] = node.runtime.services.queues.paths.values()
        assert path.connections >= 1  # still open: idle, not aborted
    finally:
        await node.stop()
        await sink.stop()
    assert len(records(logs, "Delivery")) == 80
    assert records(logs, "Delayed") == [] and samples == {}


class SlowReplies(_Handler):
    """Answers MAIL, RCPT and the final dot each after ``delay`` seconds."""

    def __init__(self, state: Any, delay: float) -> None:
        super().__init__(state)
        self.delay = delay

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:  # fmt: skip
        await asyncio.sleep(self.delay)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:  # fmt: skip
        await asyncio.sleep(self.delay)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


class SlowSink(RecordingSink):
    async def start(self) -> SlowSink:
        handler = SlowReplies(self.state, 0.6)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _SinkSMTP(handler, hostname="sink.test", decode_data=False),
            self.host, self.port)  # fmt: skip
        self.port = self._server.sockets[0].getsockname()[1]
        return self


async def test_each_command_is_progress_so_a_slow_transaction_is_not_aborted(
    tmp_path: Path,
) -> None:
    # Three replies 0.6 s apart: the transaction takes longer than the 1 s threshold,
    # but no wait between two commands or replies does.
    logs = tmp_path / "logs"
    sink = await SlowSink().start()
    extra = SMTP_PATH.format(port=sink.port, idle="200ms")
    node = await start(tmp_path, policy(logs, extra=extra), sink=sink)
    try:
        started = time.monotonic()
        await node.send(recipients="slow@example.com")
        [delivery] = await wait_for_log(logs, "Delivery", timeout=15)
        took = time.monotonic() - started
        samples = await _metric(node, "dispatcher_watchdog_aborted_total")
    finally:
        await node.stop()
        await sink.stop()
    assert took >= 1.8  # longer than the threshold, as the test means it to be
    assert delivery["response"]["code"] == 250
    assert records(logs, "Delayed") == [] and samples == {}


async def test_inspect_ready_q_shows_the_effective_threshold(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    sink = await RecordingSink().start()
    extra = SMTP_PATH.format(port=sink.port, idle="3s")
    node = await start(tmp_path, policy(logs, extra=extra), sink=sink)
    try:
        await node.send(recipients="seen@example.com")
        await sink.wait_for(1)
        [path] = node.runtime.services.queues.paths.values()
        status, view = await node.admin(
            "GET", f"/api/admin/inspect-ready-q/v1?queue_name={path.key.name}"
        )
    finally:
        await node.stop()
        await sink.stop()
    assert status == 200, view
    assert view["state"]["watchdog_threshold"] == "1s"
    assert view["path_config"]["dispatcher_progress_watchdog_timeout"] == "1s"
