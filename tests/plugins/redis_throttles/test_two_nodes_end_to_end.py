"""Two ``kumocore serve`` processes, one ``redis-server``: the limits hold at the sink.

Both nodes load two_node_policy.py: the egress path to the test site allows
``max_message_rate = '10/s'`` and ``connection_limit = 2``. Forty messages go into each node
over SMTP at once, and a recording sink on 127.0.0.1 (which answers DATA a little slowly,
so connections overlap) measures what arrives. Both nodes connect from 127.0.0.1, so the
sink's ``max_active["127.0.0.1"]`` is the fleet's concurrency.

With Redis the two nodes share one budget: steady-state 1-second windows hold about 10
messages and never more than 2 connections are open. The control runs the same fleet
without Redis: each node then keeps its own limits and the fleet reaches about 20/s and 4
connections, which proves the measurement can fail. A third run gives the second node
its mail only while the first holds every fleet-wide connection slot: it must still
deliver once the slots are free.

Rates use GCRA with the default burst (the whole limit at once), so a busy period may
open with the burst on top of the rate; every window of W seconds is bounded by
``capacity + limit * W / period`` (+1 for the boundary), and windows that start after the
burst is spent are bounded by the rate itself. The fleet can pause (one node's idle
connections hold the slots for ``idle_timeout`` while the other waits), and the bucket
refills meanwhile, so "after the burst" means a second into each busy period.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.common.dns_server import TestDnsServer
from bench.common.redis_server import RedisServer, require_redis_server
from bench.common.serve_process import ServeProcess
from bench.common.sink import RecordingSink, _Handler, _SinkSMTP
from bench.common.smtp_client import RawSmtpClient
from kumocore.throttle import ThrottleSpec
from tests.plugins.redis_throttles import two_node_policy

pytestmark = pytest.mark.slow

POLICY = Path(two_node_policy.__file__)
DOMAIN = "fleet.test"
MX_HOST = "mx.fleet.test"
RATE = ThrottleSpec.parse("10/s")
CONNECTION_LIMIT = 2
PER_CONNECTION = 5
MESSAGES_PER_NODE = 40
#: How long the sink sits on each DATA before answering: keeps connections visibly open.
DATA_DELAY = 0.05
#: Arrival at the sink vs admission by the throttle: one more message per window at most.
JITTER = 1
#: A pause between arrivals longer than this (about two rate intervals) ends a busy period.
IDLE_GAP = 0.25
#: Windows starting this long into a busy period see the rate, not the opening burst.
STEADY_AFTER = 1.0


# --------------------------------------------------------------------------- the sink


class _SlowDataHandler(_Handler):
    """The recording handler, answering DATA only after ``DATA_DELAY`` (recorded on arrival)."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(DATA_DELAY)
        return reply

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if isinstance(server, _ClientEndSMTP):
            server.session_ended()
        return "221 Bye"


class _ClientEndSMTP(_SinkSMTP):
    """Counts a connection as active until the client ends it (QUIT or its FIN).

    The base sink counts until its own ``connection_lost``, a few loop turns after the
    client closed; a node that then hands its connection slot straight to a new
    connection would show up as one connection too many.
    """

    def eof_received(self) -> bool | None:
        self.session_ended()
        return super().eof_received()


class SlowSink(RecordingSink):
    """The recording sink with a slow DATA reply and client-side connection ends."""

    async def start(self) -> SlowSink:
        loop = asyncio.get_running_loop()
        handler = _SlowDataHandler(self.state)
        self._server = await loop.create_server(
            lambda: _ClientEndSMTP(handler, hostname="sink.test", decode_data=False),
            self.host,
            self.port,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self


# --------------------------------------------------------------------------- the nodes


class Node(ServeProcess):
    """One ``kumocore serve`` process (its own session, so signals reach only it)."""

    def __init__(self, name: str, root: Path, env: dict[str, str]) -> None:
        self.dir = root / name
        self.dir.mkdir(parents=True)
        env = {**env, "TWO_NODE_DIR": str(self.dir), "TWO_NODE_NAME": f"{name}.test"}
        super().__init__(POLICY, self.dir / "kumocore.log", env, shutdown_timeout=3, name=name,
                         listen_ports=["TWO_NODE_SMTP_PORT"])  # fmt: skip

    @property
    def smtp_port(self) -> int:  # held (bench.common.serve_process)
        return self.ports["TWO_NODE_SMTP_PORT"]

    async def wait_ready(self, timeout: float = 20.0) -> None:
        await self.wait_for_smtp("TWO_NODE_SMTP_PORT", timeout)

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)


async def inject(node: Node, count: int) -> None:
    """``count`` messages to the test site over one SMTP session, as fast as it takes them."""
    client = await RawSmtpClient.connect(node.smtp_port)
    try:
        await client.hello()  # reads the greeting too
        for n in range(count):
            recipient = f"u{n}@{DOMAIN}"
            body = f"To: <{recipient}>\r\nSubject: {node.name} {n}\r\n\r\nx\r\n"
            _, final = await client.send_mail("s@src.test", [recipient], body)
            assert final.code == 250, f"{node.name}: {final}"
    finally:
        await client.close()


# --------------------------------------------------------------------------- measuring


def max_in_window(times: list[float], width: float, starts: list[bool] | None = None) -> int:
    """The most arrivals in any window [t, t + width) starting at an arrival ``times[i]``
    (only where ``starts[i]``, when given)."""
    best = 0
    for i, start in enumerate(times):
        if starts is None or starts[i]:
            best = max(best, bisect.bisect_left(times, start + width) - i)
    return best


def steady_starts(times: list[float]) -> list[bool]:
    """Which arrivals start a steady-state window: at least ``STEADY_AFTER`` into a busy
    period (a run of arrivals without a gap longer than ``IDLE_GAP``).

    While the fleet is idle its bucket refills, so each busy period may open with a burst
    (GCRA); once that is spent, arrivals follow the rate.
    """
    flags: list[bool] = []
    period_start = previous = times[0] if times else 0.0
    for current in times:
        if current - previous > IDLE_GAP:
            period_start = current
        flags.append(current - period_start >= STEADY_AFTER)
        previous = current
    return flags


@dataclass
class FleetRun:
    arrivals: list[float]  # sorted arrival times at the sink
    by_node: dict[str, int]  # messages per node (by EHLO name)
    max_active: int  # most concurrent connections from 127.0.0.1
    per_connection: int  # most messages on one connection

    @property
    def duration(self) -> float:
        return self.arrivals[-1] - self.arrivals[0]

    def window(self, width: float = 1.0, *, steady: bool = False) -> int:
        starts = steady_starts(self.arrivals) if steady else None
        return max_in_window(self.arrivals, width, starts)

    def idle_gaps(self) -> list[float]:
        pairs = itertools.pairwise(self.arrivals)
        return [round(b - a, 2) for a, b in pairs if b - a > IDLE_GAP]

    def summary(self) -> dict[str, Any]:
        return {"messages": len(self.arrivals), "by_node": self.by_node,
                "duration_s": round(self.duration, 2), "max_1s_window": self.window(1.0),
                "max_steady_1s_window": self.window(1.0, steady=True),
                "max_2s_window": self.window(2.0), "idle_gaps_s": self.idle_gaps(),
                "max_active": self.max_active,
                "max_per_connection": self.per_connection}  # fmt: skip


@contextlib.contextmanager
def dns_for_site() -> Iterator[TestDnsServer]:
    with TestDnsServer({DOMAIN: {"MX": [(10, MX_HOST)]}, MX_HOST: {"A": ["127.0.0.1"]}}) as dns:
        yield dns


Feed = Callable[[list["Node"], RecordingSink], Awaitable[int]]


async def feed_both_at_once(nodes: list[Node], sink: RecordingSink) -> int:
    await asyncio.gather(*(inject(node, MESSAGES_PER_NODE) for node in nodes))
    return len(nodes) * MESSAGES_PER_NODE


async def run_fleet(
    root: Path, redis_url: str, feed: Feed = feed_both_at_once, *, timeout: float = 20.0
) -> FleetRun:
    """Start two nodes (sharing ``redis_url``; "" = per-node limits), ``feed`` them (it
    returns how many messages it sent), and measure what arrives at the sink."""
    with dns_for_site() as dns:
        sink = await SlowSink().start()
        env = {"TWO_NODE_DNS": dns.address, "TWO_NODE_SINK_PORT": str(sink.port),
               "TWO_NODE_REDIS": redis_url, "TWO_NODE_RATE": str(RATE),
               "TWO_NODE_CONNECTIONS": str(CONNECTION_LIMIT),
               "TWO_NODE_PER_CONNECTION": str(PER_CONNECTION)}  # fmt: skip
        nodes = [Node(name, root, env) for name in ("node1", "node2")]
        try:
            for node in nodes:
                node.start()
            await asyncio.gather(*(node.wait_ready() for node in nodes))
            total = await feed(nodes, sink)
            try:
                await sink.wait_for(total, timeout=timeout)
            except AssertionError as exc:
                logs = "\n".join(f"--- {n.name}\n{n.log_text(1500)}" for n in nodes)
                raise AssertionError(f"{exc}; by node: {by_node(sink)}\n{logs}") from None
        finally:
            await asyncio.gather(*(asyncio.to_thread(node.stop) for node in nodes))
            await sink.stop()
    state = sink.state
    return FleetRun(
        arrivals=sorted(m.at for m in state.messages),
        by_node=by_node(sink),
        max_active=state.max_active["127.0.0.1"],
        per_connection=max(state.per_connection.values()),
    )


def by_node(sink: RecordingSink) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in sink.messages:
        counts[message.ehlo] = counts.get(message.ehlo, 0) + 1
    return dict(sorted(counts.items()))


def gcra_ceiling(width: float) -> int:
    """The most one ``RATE`` bucket admits in ``width`` seconds, starting full.

    GCRA admits ``capacity`` at once and then one per ``period / limit``: +1 for a window
    that has an admission on both ends, + ``JITTER`` for timing at the sink.
    """
    return int(RATE.capacity + RATE.limit * width / RATE.period) + 1 + JITTER


# --------------------------------------------------------------------------- the tests


async def test_two_nodes_sharing_redis_hold_one_rate_and_one_connection_limit_at_the_sink(
    tmp_path: Path,
) -> None:
    require_redis_server()
    with RedisServer() as redis:
        run = await run_fleet(tmp_path, redis.url)
    print("with redis:", run.summary())  # the numbers in docs/redis-throttles.md

    total = 2 * MESSAGES_PER_NODE
    assert len(run.arrivals) == total
    # Both nodes delivered: they shared the budget, neither was simply idle.
    assert run.by_node == {"node1.test": MESSAGES_PER_NODE, "node2.test": MESSAGES_PER_NODE}
    assert run.max_active <= CONNECTION_LIMIT, run.summary()
    assert run.per_connection <= PER_CONNECTION, run.summary()
    # Once the burst is spent, any second carries the rate (10), with a little jitter.
    assert run.window(1.0, steady=True) <= RATE.limit + 1 + JITTER, run.summary()
    # Every window, burst included, stays inside one bucket's GCRA envelope ...
    for width in (1.0, 2.0, 4.0):
        assert run.window(width) <= gcra_ceiling(width), (width, run.summary())
    # ... so the whole run took at least what one node alone would have needed.
    assert run.duration >= (total - RATE.capacity - 1) * RATE.period / RATE.limit - 0.2


async def feed_second_node_while_the_first_holds_every_slot(
    nodes: list[Node], sink: RecordingSink
) -> int:
    first, second = nodes
    await inject(first, 20)
    # The first node's connections hold the fleet's whole connection limit ...
    deadline = time.monotonic() + 10
    while sink.state.active["127.0.0.1"] < CONNECTION_LIMIT:
        assert time.monotonic() < deadline, "the first node never opened its connections"
        await asyncio.sleep(0.005)
    # ... when mail arrives at the second: it finds no free slot, and nothing of its own
    # (no connection ending, no new message) will wake its ready queue later.
    await inject(second, 5)
    return 25


async def test_a_node_that_finds_the_fleet_slots_taken_delivers_once_they_are_free(
    tmp_path: Path,
) -> None:
    require_redis_server()
    with RedisServer() as redis:
        run = await run_fleet(
            tmp_path, redis.url, feed_second_node_while_the_first_holds_every_slot, timeout=12
        )
    print("second node late:", run.summary())

    assert run.by_node == {"node1.test": 20, "node2.test": 5}, run.summary()
    assert run.max_active <= CONNECTION_LIMIT, run.summary()


async def test_control_two_nodes_without_redis_exceed_the_limits_together(
    tmp_path: Path,
) -> None:
    run = await run_fleet(tmp_path, "")
    print("without redis:", run.summary())

    assert len(run.arrivals) == 2 * MESSAGES_PER_NODE
    # Each node keeps its own budget: together they run about twice the rate and limit.
    assert run.window(1.0, steady=True) >= 1.5 * RATE.limit, run.summary()
    assert run.window(2.0) > gcra_ceiling(2.0), run.summary()
    # Each node holds its own limit (which also shows the sink counts connections exactly).
    assert CONNECTION_LIMIT < run.max_active <= 2 * CONNECTION_LIMIT, run.summary()
