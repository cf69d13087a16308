"""End to end: dot lines and odd line endings reach the next MTA byte for byte as before.

A raw client sends bodies with lines starting with ``.``, bare LF and bare CR, a final
line without CRLF; the node receives them (``invalid_line_endings`` Allow, Fix, Deny)
and delivers to a sink that records the exact DATA bytes on the wire. Those must be the
old slow path's bytes (:func:`tests.delivery.test_wire.reference_dot_stuff`, the plain
definition) whether delivery took the CRLF-clean fast path or not.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from bench.common.smtp_client import RawSmtpClient
from kumocore import hookimpl
from kumocore.reception.smtp.data import unstuff
from kumocore.testing.plugin import MakeNode
from tests.delivery.test_wire import reference_dot_stuff

# Dot lines at the start, in the middle and at the end; ".." lines; a lone "." line
# (stuffed by the client as ".."), so every dot rule is on the wire.
DOTS = (b"..leading dot\r\nSubject: dots\r\n\r\n...three\r\nmiddle\r\n...\r\n"
        b"..x\r\nlast .\r\n")
ODD = b"Subject: odd\r\n\r\nbare lf\n.dot after lf\nbare cr\r..cr dot\r\r\nend\r\n"


class WireSink:
    """An SMTP server that keeps each DATA section exactly as sent, final dot included."""

    def __init__(self) -> None:
        self.wires: list[bytes] = []
        self.arrived = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> WireSink:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0,
                                                  limit=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[bytes]:
        async with asyncio.timeout(timeout):
            while len(self.wires) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.wires

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 wire.test\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-wire.test\r\n250 PIPELINING\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go\r\n")
                    await writer.drain()
                    self.wires.append(await reader.readuntil(b"\r\n.\r\n"))
                    self.arrived.set()
                    writer.write(b"250 2.0.0 kept\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                else:
                    writer.write(b"250 ok\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


class Policy:
    """Notes whether each received message is known CRLF-clean (which path delivery
    takes); with ``prepend``, first adds a header in front (the body stays shared)."""

    def __init__(self, prepend: bool = False) -> None:
        self.prepend = prepend
        self.clean: list[bool] = []

    @hookimpl
    def kumo_smtp_server_message_received(self, message: Any) -> None:
        if self.prepend:
            message.prepend_header("X-Policy", "added")
        self.clean.append(message.crlf_clean)


@pytest.fixture
async def sink() -> Any:
    wire_sink = await WireSink().start()
    yield wire_sink
    await wire_sink.stop()


async def _send(port: int, recipients: list[str], body: bytes) -> None:
    client = await RawSmtpClient.connect(port)
    try:
        await client.hello()
        _rcpts, final = await client.send_mail("s@example.org", recipients, body)
        assert final.code == 250, final
    finally:
        await client.close()


@pytest.mark.parametrize(("mode", "body", "fast"), [
    ("Deny", DOTS, True),  # checked CRLF-clean at reception: the fast path
    ("Fix", ODD, True),  # normalised at reception: the fast path
    ("Allow", ODD, False),  # bare line ends kept in the spool: the slow path normalises
    ("Allow", DOTS, True),  # clean anyway: the fast path
], ids=["deny-dots", "fix-odd-ends", "allow-odd-ends", "allow-dots"])
async def test_dot_lines_and_line_ends_reach_the_next_mta_as_the_old_path_sent_them(
    make_node: MakeNode, sink: WireSink, mode: str, body: bytes, fast: bool
) -> None:
    policy = Policy()
    node = await make_node(sink=sink, plugins=[policy], esmtp={"invalid_line_endings": mode,
                                             "trace_headers": {"received_header": False,
                                                                "supplemental_header": False}})
    await _send(node.smtp_port, ["r@example.com"], body)
    [wire] = await sink.wait_for(1)
    stored = unstuff(body)  # what reception keeps (Fix: then normalised by the definition)
    assert wire == reference_dot_stuff(stored)
    assert wire.count(b"\r\n.\r\n") == 1
    assert policy.clean == [fast]


async def test_a_shared_body_with_headers_added_arrives_for_every_recipient_as_before(
    make_node: MakeNode, sink: WireSink
) -> None:
    policy = Policy(prepend=True)
    node = await make_node(sink=sink, plugins=[policy])
    recipients = [f"r{n}@example.com" for n in range(3)]
    await _send(node.smtp_port, recipients, DOTS)
    wires = await sink.wait_for(3)
    body_wire = reference_dot_stuff(unstuff(DOTS))
    for wire in wires:
        # Trace, X-Policy and Received headers in front, then the body as before.
        assert wire.startswith(b"X-KumoRef: ") and b"\r\nX-Policy: added\r\nReceived: " in wire
        assert wire.endswith(body_wire)
        assert wire == reference_dot_stuff(unstuff(wire[:-3]))  # a canonical stuffing
    assert policy.clean == [True] * 3


async def test_a_head_given_apart_from_a_shared_body_reaches_the_mta_as_one_message(
    sink: WireSink
) -> None:
    from kumocore.config import EgressPathConfig
    from kumocore.delivery.client import open_connection

    path = EgressPathConfig.from_options({"enable_tls": "Disabled"})
    conn = await open_connection(mx_host="wire.test", address="127.0.0.1", port=sink.port,
                                 source_address=None, ehlo_domain="client.test", path=path)
    body = DOTS + b"QUJD" * 30_000 + b"\r\n"  # leading dot: stuffed after the head's CRLF
    head = b"Received: by node.test\r\n"
    try:
        reply = await conn.send("s@example.org", "r@example.com", body, crlf_clean=True,
                                head=head)
        assert reply.code == 250, reply
        unjoined = await conn.send("s@example.org", "r@example.com", head + body)
        assert unjoined.code == 250, unjoined
    finally:
        await conn.close()
    first, second = await sink.wait_for(2)
    assert first == second == reference_dot_stuff(head + body)
