"""A connect that stalls after the egress source address was bound
(:mod:`kumocore.delivery.source_bind`): the destination never answers the SYN.

On loopback a listener whose accept queue is full drops every new SYN (the kernel neither
accepts nor refuses it), so a connect to it stays in SYN_SENT until the client gives up:
:func:`stalled_port` listens with a backlog of 0, never accepts, and fills the queue. No
firewall rule is needed. The bound source is seen in ``/proc/net/tcp``: the stalled socket
leaves from the egress source's address, so the bind succeeded and only the connect hangs.

What must hold: the path's ``connect_timeout`` ends the attempt; the message is deferred
with a transient failure that says the connect timed out; the failure is the path's
(``total_messages_transfail`` of its service, the path's run of connection failures), not
``bind_failures`` (nor ``proxy_connection_failures``, nor the source's health); the stalled
socket is closed, on either event loop; and other paths deliver meanwhile.
"""

from __future__ import annotations

import asyncio
import select
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from kumocore.delivery.source_bind import connect_from
from kumocore.testing.node import Node
from kumocore.testing.plugin import MakeNode
from kumocore.testing.smtp_sink import RecordingSink
from tests.support.metric_samples import scrape, series

SOURCE_IP = "127.0.10.71"
CONNECT_TIMEOUT = 3.0
STALLED = "stalled.test"  # its MX is mx.stalled.test, on a port that never answers
ZONES = {STALLED: {"MX": [(10, f"mx.{STALLED}")]}, f"mx.{STALLED}": {"A": ["127.0.0.1"]}}
STALLED_SERVICE = f"smtp_client:bound->mx.{STALLED}@smtp_client"

POLICY = """
local kumo = require 'kumo'
kumo.on('get_egress_source', function(name)
  return kumo.make_egress_source { name = name, source_address = 'SOURCE_IP' }
end)
kumo.on('get_egress_pool', function(name)
  return kumo.make_egress_pool { name = name, entries = { { name = 'bound' } } }
end)
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config { egress_pool = 'p', retry_interval = '1h' }
end)
kumo.on('get_egress_path_config', function(domain, source, site)
  if domain == 'STALLED' then
    return kumo.make_egress_path {
      smtp_port = STALLED_PORT, connect_timeout = 'CONNECT_TIMEOUTs', prohibited_hosts = {} }
  end
  return kumo.make_egress_path { smtp_port = SINK_PORT, prohibited_hosts = {} }
end)
"""


def _hex_ipv4(address: str) -> str:
    """``address`` as ``/proc/net/tcp`` prints it (the 32-bit value in host byte order)."""
    return socket.inet_aton(address)[::-1].hex().upper()


def syn_sent(source_ip: str, port: int) -> int:
    """TCP sockets in SYN_SENT from ``source_ip`` to 127.0.0.1:``port``."""
    local = f"{_hex_ipv4(source_ip)}:"
    remote = f"{_hex_ipv4('127.0.0.1')}:{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].startswith(local) and fields[2] == remote and fields[3] == "02":
            count += 1
    return count


def _connects_within(port: int, seconds: float) -> socket.socket | None:
    """A socket connected to 127.0.0.1:``port`` within ``seconds``, else None."""
    probe = socket.socket()
    probe.setblocking(False)
    probe.connect_ex(("127.0.0.1", port))
    _, writable, _ = select.select([], [probe], [], seconds)
    if writable and probe.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
        return probe
    probe.close()
    return None


@pytest.fixture
def stalled_port() -> Iterator[int]:
    """A port on 127.0.0.1 whose connects stall: a listener with a full accept queue."""
    fillers: list[socket.socket] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        try:
            for _ in range(8):  # the kernel may queue one more than the backlog asks
                filler = _connects_within(port, 0.5)
                if filler is None:
                    break
                fillers.append(filler)
            else:
                pytest.fail("the accept queue of a listen(0) socket never filled")
            assert fillers, "not even one connection was queued: nothing listens?"
            yield port
        finally:
            for filler in fillers:
                filler.close()


@pytest.fixture
async def sink() -> AsyncIterator[RecordingSink]:
    async with RecordingSink() as recording:
        yield recording


@pytest.fixture
async def node(make_node: MakeNode, sink: RecordingSink, stalled_port: int) -> Node:
    policy = (POLICY.replace("SOURCE_IP", SOURCE_IP).replace("STALLED_PORT", str(stalled_port))
              .replace("STALLED", STALLED).replace("SINK_PORT", str(sink.port))
              .replace("CONNECT_TIMEOUT", f"{CONNECT_TIMEOUT:g}"))  # fmt: skip
    return await make_node(policy, sink=sink, zones=ZONES)


async def _until_stalled(port: int, timeout: float = 5.0) -> None:
    """Until the node's connect from the bound source sits in SYN_SENT."""
    deadline = time.monotonic() + timeout
    while not syn_sent(SOURCE_IP, port):
        assert time.monotonic() < deadline, f"no connect from {SOURCE_IP} to port {port}"
        await asyncio.sleep(0.02)


async def test_a_stalled_connect_from_a_bound_source_is_deferred_at_the_paths_connect_timeout(
    node: Node, stalled_port: int
) -> None:
    sent = time.monotonic()
    assert await node.send(recipients=f"r@{STALLED}") == {}
    await _until_stalled(stalled_port)  # the source is bound: only the connect hangs
    (record,) = await node.wait_for("TransientFailure", timeout=CONNECT_TIMEOUT + 5)
    waited = time.monotonic() - sent
    assert CONNECT_TIMEOUT <= waited < CONNECT_TIMEOUT + 3, waited  # not the 60s default
    content = record["response"]["content"]
    assert record["response"]["code"] == 400
    assert f"timeout after {CONNECT_TIMEOUT:g}s connecting to 127.0.0.1:{stalled_port}" in content
    assert "bind" not in content
    assert record["egress_source"] == "bound"
    assert node.logs("Delivery", "Bounce") == []
    assert syn_sent(SOURCE_IP, stalled_port) == 0  # the abandoned connect's socket is closed


async def test_a_stalled_connect_counts_as_the_paths_connection_failure_not_a_bind_failure(
    node: Node, stalled_port: int
) -> None:
    assert await node.send(recipients=f"r@{STALLED}") == {}
    await node.wait_for("TransientFailure", timeout=CONNECT_TIMEOUT + 5)
    values = await scrape(node)
    assert values[("bind_failures", ())] == 0
    assert values[("proxy_connection_failures", ())] == 0
    assert series(values, "total_messages_transfail")[(STALLED_SERVICE,)] == 1
    # The destination's failure, not the source's: no source-health failure either.
    assert series(values, "egress_source_connection_failures") == {}
    queues = node.runtime.services.queues  # type: ignore[union-attr]
    (path,) = [p for p in queues.paths.values() if p.key.site == f"mx.{STALLED}"]
    assert path.connection_failures == 1  # the run consecutive_connection_failures_* counts


async def test_other_paths_deliver_while_a_connect_from_the_source_stalls(
    node: Node, sink: RecordingSink, stalled_port: int
) -> None:
    assert await node.send(recipients=f"r@{STALLED}") == {}
    await _until_stalled(stalled_port)
    started = time.monotonic()
    assert await node.send(recipients=["a@fine.test", "b@other.test"]) == {}
    await sink.wait_for(2, timeout=CONNECT_TIMEOUT)
    assert time.monotonic() - started < 1.5
    assert syn_sent(SOURCE_IP, stalled_port) == 1  # still stalled meanwhile
    assert node.logs("TransientFailure") == []
    assert {m.source_ip for m in sink.messages} == {SOURCE_IP}  # the same bound source
    await node.wait_for("TransientFailure", timeout=CONNECT_TIMEOUT + 5)


def _uvloop() -> asyncio.AbstractEventLoop:
    uvloop = pytest.importorskip("uvloop")  # what ``kumocore serve`` runs on
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


@pytest.mark.parametrize("new_loop", [asyncio.new_event_loop, _uvloop], ids=["asyncio", "uvloop"])
def test_a_stalled_connect_cut_short_raises_timeout_and_closes_its_socket_on_either_loop(
    stalled_port: int, new_loop: Callable[[], asyncio.AbstractEventLoop]
) -> None:
    async def attempt() -> None:
        opening = connect_from(SOURCE_IP, "127.0.0.1", stalled_port, limit=1024)
        task = asyncio.ensure_future(asyncio.wait_for(opening, 1.0))
        await _until_stalled(stalled_port)
        with pytest.raises(TimeoutError):  # a SourceBindFailed would be an OSError
            await task

    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(attempt())
    assert syn_sent(SOURCE_IP, stalled_port) == 0
