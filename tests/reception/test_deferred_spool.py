"""KumoMTA's ``deferred_spool`` (ESMTP listener option, HTTP injection field,
``kumo.inject_message``'s second argument): an accepted message is held in memory and
written to the spool only once it has to wait (its first transient failure) or when the
node shuts down; one delivered at its first attempt is never written.

Real nodes on RocksDB spools in temp dirs and a real SMTP sink that holds its reply to
DATA until the test lets it go, so the spool can be looked at while a first attempt is
in flight. (A suspended queue is no way to hold them: as in KumoMTA, a suspension is a
transient failure, which writes the message.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from kumocore.mail.message import Message
from kumocore.testing.node import Node
from kumocore.testing.plugin import MakeNode
from kumocore.testing.smtp_sink import RecordingSink

POLICY = """
local kumo = require 'kumo'
kumo.on('init', function() end)
"""

INJECTING_POLICY = """
local kumo = require 'kumo'
kumo.on('init', function() end)
kumo.on('smtp_server_message_received', function(msg)
  if msg:recipient().user == 'trigger' then
    local made = kumo.make_message('s@example.org', 'made@made.example',
                                   'Subject: made\\r\\n\\r\\nhello\\r\\n')
    kumo.inject_message(made, %s)
  end
end)
"""


class _GatedHandler:
    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.in_data = 0
        self.delivered: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.in_data += len(envelope.rcpt_tos)
        await self.gate.wait()
        self.delivered.extend(envelope.rcpt_tos)
        return "250 2.0.0 OK"


class GatedSink(RecordingSink):
    """A sink whose reply to DATA waits for ``handler.gate``."""

    handler = _GatedHandler()

    async def start(self) -> GatedSink:
        self.handler = _GatedHandler()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self.handler, hostname="gated.test"), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def in_flight(self, count: int) -> None:
        async with asyncio.timeout(10):
            while self.handler.in_data < count:
                await asyncio.sleep(0.01)


@pytest.fixture
async def gated() -> AsyncIterator[GatedSink]:
    sink = await GatedSink().start()
    yield sink
    sink.handler.gate.set()
    await sink.stop()


async def _spooled(node: Node) -> set[str]:
    """The ids whose envelope is in the node's meta spool now."""
    services = node.runtime.services
    assert services is not None
    return {key async for key in services.store.meta.keys()}  # noqa: SIM118 (a spool)


async def _until_spooled(node: Node, message_id: str) -> None:
    """Until the message is written and no longer counted as held (its save returned)."""
    async with asyncio.timeout(10):
        while await _spooled(node) != {message_id} or _unsaved(node):
            await asyncio.sleep(0.02)


def _unsaved(node: Node) -> int:
    services = node.runtime.services
    assert services is not None
    return services.store.unsaved


async def test_a_message_delivered_at_its_first_attempt_is_never_written(
    make_node: MakeNode, gated: GatedSink,
) -> None:
    node = await make_node(POLICY, spool="rocksdb", esmtp={"deferred_spool": True}, sink=gated)
    await node.send(recipients="fast@example.com")
    await gated.in_flight(1)
    assert await _spooled(node) == set() and _unsaved(node) == 1  # in memory only
    gated.handler.gate.set()
    await node.wait_for("Delivery")
    assert await _spooled(node) == set() and _unsaved(node) == 0
    assert gated.handler.delivered == ["fast@example.com"]


async def test_without_the_option_the_message_in_flight_is_in_the_spool(
    make_node: MakeNode, gated: GatedSink,
) -> None:
    node = await make_node(POLICY, spool="rocksdb", sink=gated)
    await node.send(recipients="slow@example.com")
    await gated.in_flight(1)
    [reception] = await node.wait_for("Reception")
    assert await _spooled(node) == {reception["id"]} and _unsaved(node) == 0


async def test_a_suspension_counts_as_a_transient_failure_and_writes_it(
    make_node: MakeNode,
) -> None:
    node = await make_node(POLICY, spool="rocksdb", esmtp={"deferred_spool": True})
    await node.hold()
    await node.send(recipients="held@example.com")
    [failure] = await node.wait_for("TransientFailure")
    await _until_spooled(node, failure["id"])


async def test_the_first_transient_failure_writes_the_message(make_node: MakeNode) -> None:
    node = await make_node(POLICY, spool="rocksdb", esmtp={"deferred_spool": True})
    await node.send(recipients="tempfail-once@example.com")
    [failure] = await node.wait_for("TransientFailure")
    await _until_spooled(node, failure["id"])  # written just after its record


async def test_a_clean_shutdown_mid_attempt_keeps_it_and_the_next_start_delivers_it(
    make_node: MakeNode, gated: GatedSink, tmp_path: Any,
) -> None:
    first = await make_node(POLICY, spool="rocksdb", esmtp={"deferred_spool": True},
                            tmp_path=tmp_path, sink=gated)
    await first.send(recipients="kept@example.com")
    await gated.in_flight(1)
    [reception] = await first.wait_for("Reception")
    assert await _spooled(first) == set()
    await first.stop()
    second = await make_node(POLICY, spool="rocksdb", tmp_path=tmp_path)
    [delivery] = await second.wait_for("Delivery")
    assert delivery["id"] == reception["id"]
    assert delivery["recipient"] == "kept@example.com"


async def test_a_peer_block_can_turn_it_on_for_some_clients_only(
    make_node: MakeNode, gated: GatedSink,
) -> None:
    node = await make_node(POLICY, spool="rocksdb", sink=gated,
                           esmtp={"relay_hosts": ["127.0.0.0/8"],
                                  "peer": {"127.0.0.6/32": {"deferred_spool": True}}})
    await node.send(recipients="trusted@one.example", source_address="127.0.0.6")
    await node.send(recipients="other@two.example", source_address="127.0.0.1")
    await gated.in_flight(1)  # the other waits behind it, accepted
    receptions = await node.wait_for("Reception", count=2)
    ids = {r["recipient"]: r["id"] for r in receptions}
    assert await _spooled(node) == {ids["other@two.example"]}
    assert _unsaved(node) == 1


@pytest.mark.parametrize("deferred", [True, False])
async def test_http_injection_honours_its_deferred_spool_field(
    make_node: MakeNode, gated: GatedSink, deferred: bool
) -> None:
    node = await make_node(POLICY, spool="rocksdb", sink=gated)
    status, answer = await node.inject({
        "envelope_sender": "s@example.org", "deferred_spool": deferred,
        "content": "Subject: hi\r\n\r\nhello\r\n",
        "recipients": [{"email": "a@example.com"}, {"email": "b@example.com"}],
    })
    assert status == 200, answer
    await gated.in_flight(1)  # the other waits behind it, accepted
    receptions = await node.wait_for("Reception", count=2)
    spooled = await _spooled(node)
    assert spooled == (set() if deferred else {r["id"] for r in receptions})
    assert _unsaved(node) == (2 if deferred else 0)


@pytest.mark.parametrize("deferred", ["true", "false"])
async def test_kumo_inject_message_takes_deferred_spool_as_its_second_argument(
    make_node: MakeNode, gated: GatedSink, deferred: str
) -> None:
    node = await make_node(INJECTING_POLICY % deferred, spool="rocksdb", sink=gated)
    await node.send(recipients="trigger@example.com")
    await gated.in_flight(1)  # the other waits behind it, accepted
    # (the injected message logs no Reception record, as in KumoMTA)
    receptions = await node.wait_for("Reception", count=1)
    spooled = await _spooled(node)
    assert receptions[0]["id"] in spooled  # the listener's own message: written
    assert len(spooled) == (1 if deferred == "true" else 2)
    assert _unsaved(node) == (1 if deferred == "true" else 0)


async def test_a_message_held_only_in_memory_keeps_its_body_when_asked_to_drop_it() -> None:
    message = Message("s@example.org", "r@example.com", b"Subject: x\r\n\r\nbody\r\n")
    message.unspooled = True
    message.release_data()  # memory pressure, a full ready queue: the body has no other copy
    assert message.data.endswith(b"body\r\n")
    message.unspooled = False
    message.release_data()
    assert message.data == b""


@pytest.mark.parametrize("kind", ["localdisk", "rocksdb"])
async def test_the_store_writes_held_messages_at_close_and_forgets_removed_ones(
    tmp_path: Any, kind: str
) -> None:
    from tests.reception.shared_body_stores import open_store

    store = open_store(kind, str(tmp_path))
    kept = Message("s@example.org", "kept@example.com", b"Subject: k\r\n\r\nkept\r\n")
    done = Message("s@example.org", "done@example.com", b"Subject: d\r\n\r\ndone\r\n")
    for message in (kept, done):
        store.defer(message)
    assert store.unsaved == 2 and [k async for k in store.meta.keys()] == []  # noqa: SIM118
    await store.remove(done.id)  # delivered before it had to wait: nothing to delete
    assert store.unsaved == 1 and not done.unspooled
    await store.close()
    reopened = open_store(kind, str(tmp_path))
    recovered = [m async for m in reopened.recover(load_data=True)]
    await reopened.close()
    assert [(m.id, m.data) for m in recovered] == [(kept.id, kept.data)]
