"""``/api/admin/trace-smtp-server/v1``: a real node, a WebSocket subscriber with a filter,
real SMTP clients bound to 127.0.0.5/127.0.0.6, and the events they cause."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import time
from typing import Any

import aiohttp
import pytest

from kumocore.testing.node import Node
from kumocore.testing.plugin import MakeNode
from kumocore.trace.bus import MAX_BYTES, MAX_EVENTS, SERVER_TRACE
from kumocore.trace.ws import SERVER_PATH
from tests.support.ticker import LoopTicker

TRACED = "127.0.0.5"
OTHER = "127.0.0.6"
ESMTP = {"relay_hosts": ["127.0.0.0/8"], "max_junk_commands": 100_000}


class RecordingClient:
    """A raw SMTP client that keeps what it sent and each reply line as it came."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.sent: list[str] = []
        self.lines: list[list[str]] = []  # per reply, its raw lines (CRLF included)

    @classmethod
    async def connect(cls, port: int, source: str) -> RecordingClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       local_addr=(source, 0))  # fmt: skip
        return cls(reader, writer)

    async def reply(self) -> list[str]:
        lines = []
        while True:
            raw = (await asyncio.wait_for(self.reader.readline(), 10)).decode()
            lines.append(raw)
            if raw[3] != "-":
                self.lines.append(lines)
                return lines

    async def say(self, text: str) -> list[str]:
        self.sent.append(text)
        self.writer.write(text.encode())
        await self.writer.drain()
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def subscribe(http: aiohttp.ClientSession, node: Node,
                    request: dict[str, Any]) -> aiohttp.ClientWebSocketResponse:  # fmt: skip
    ws = await http.ws_connect(node.http_url + SERVER_PATH)
    await ws.send_str(json.dumps(request))
    # The filter is in place once the subscriber's matcher is no longer the catch-all.
    for _ in range(200):
        if all(type(s.matches).__name__ == "ServerFilter" for s in SERVER_TRACE.subscribers):
            return ws
        await asyncio.sleep(0.01)
    raise AssertionError("the trace subscription did not start")


async def events_until_closed(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    events = []
    while True:
        message = await asyncio.wait_for(ws.receive(), 10)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        event = json.loads(message.data)
        events.append(event)
        if event["payload"] == "Closed":
            return events


async def conversation(port: int, source: str) -> tuple[RecordingClient, str]:
    client = await RecordingClient.connect(port, source)
    await client.reply()
    await client.say("EHLO client.test\r\n")
    await client.say("MAIL FROM:<sender@example.org>\r\n")
    await client.say("RCPT TO:<rcpt@example.com>\r\n")
    await client.say("DATA\r\n")
    final = await client.say("Subject: traced\r\n\r\nline one\r\nline two\r\n.\r\n")
    await client.say("QUIT\r\n")
    await client.close()
    return client, final[0].split("ids=")[1].strip()


async def test_a_traced_session_is_streamed_event_by_event_and_other_peers_are_left_out(
    make_node: MakeNode,
) -> None:
    node = await make_node(esmtp=ESMTP)
    async with aiohttp.ClientSession() as http:
        ws = await subscribe(http, node, {"source_addr": [f"{TRACED}/32"]})
        await conversation(node.smtp_port, OTHER)  # excluded by the filter
        client, message_id = await conversation(node.smtp_port, TRACED)
        events = await events_until_closed(ws)
        await ws.close()
    assert {e["conn_meta"]["received_from"].split(":")[0] for e in events} == {TRACED}
    replies = iter(client.lines)
    expected: list[Any] = [
        "Connected",
        {"Callback": {"name": "smtp_server_connection_accepted", "result": None, "error": None}},
        *({"Write": line} for line in next(replies)),
    ]
    # The policy events each command runs (with no policy handler too, as KumoMTA).
    callbacks = {"EHLO": ["smtp_server_ehlo"], "MAIL": ["smtp_server_mail_from"],
                 "RCPT": ["get_listener_domain domain=example.com", "smtp_server_rcpt_to"]}
    for sent in client.sent:
        expected.append({"Read": sent})
        for name in callbacks.get(sent.split(" ")[0], []):
            expected.append({"Callback": {"name": name, "result": None, "error": None}})
        reply = next(replies)
        if sent.endswith("\r\n.\r\n"):
            expected.append({"Callback": {"name": "smtp_server_message_received",
                                          "result": None, "error": None}})
            expected.append("MessageDisposition")
        expected += [{"Write": line} for line in reply]
    expected.append("Closed")
    kinds = [e["payload"] if "MessageDisposition" not in e["payload"] else "MessageDisposition"
             for e in events]  # fmt: skip
    assert kinds == expected
    disposition = next(
        e["payload"]["MessageDisposition"]
        for e in events
        if isinstance(e["payload"], dict) and "MessageDisposition" in e["payload"]
    )
    assert disposition == {
        "relay": True, "log_arf": "Ignore", "log_oob": "Ignore", "queue": "example.com",
        "meta": disposition["meta"], "sender": "sender@example.org",
        "recipient": "rcpt@example.com", "id": message_id, "was_arf_or_oob": False,
        "will_enqueue": True,
    }  # fmt: skip
    assert disposition["meta"]["received_from"].startswith(TRACED)
    first = events[0]
    assert set(first) == {"conn_meta", "payload", "when"}
    assert first["when"].endswith("Z")
    assert first["conn_meta"]["received_via"] == f"127.0.0.1:{node.smtp_port}"
    assert events[-1]["conn_meta"]["ehlo_domain"] == "client.test"


async def test_terse_shows_the_message_data_by_its_first_line_and_size(
    make_node: MakeNode,
) -> None:
    node = await make_node(esmtp=ESMTP)
    async with aiohttp.ClientSession() as http:
        ws = await subscribe(http, node, {"source_addr": [TRACED], "terse": True})
        client, _ = await conversation(node.smtp_port, TRACED)
        events = await events_until_closed(ws)
        await ws.close()
    data = client.sent[-2]
    abbreviated = [
        e["payload"]["AbbreviatedRead"]
        for e in events
        if isinstance(e["payload"], dict) and "AbbreviatedRead" in e["payload"]
    ]
    assert abbreviated == [{"snippet": "Subject: traced", "len": len(data)}]
    assert {"Read": "QUIT\r\n"} in [e["payload"] for e in events]  # one line: kept whole


async def test_nothing_is_traced_and_nothing_held_once_the_tracer_leaves(
    make_node: MakeNode,
) -> None:
    node = await make_node(esmtp=ESMTP)
    async with aiohttp.ClientSession() as http:
        ws = await subscribe(http, node, {})
        assert SERVER_TRACE.active
        await ws.close()
    for _ in range(100):
        if not SERVER_TRACE.active:
            break
        await asyncio.sleep(0.01)
    assert not SERVER_TRACE.active and SERVER_TRACE.subscribers == []
    await conversation(node.smtp_port, TRACED)  # publishes nothing, and needs no tracer


async def test_an_untrusted_peer_cannot_trace(make_node: MakeNode) -> None:
    node = await make_node(esmtp=ESMTP)
    connector = aiohttp.TCPConnector(local_addr=(TRACED, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(node.http_url + SERVER_PATH)
    assert refused.value.status == 401
    assert not SERVER_TRACE.active


async def test_a_request_without_upgrade_gets_a_json_error(make_node: MakeNode) -> None:
    node = await make_node(esmtp=ESMTP)
    status, body = await node.admin("GET", SERVER_PATH)
    assert status == 400
    assert "WebSocket" in body["error"]


@pytest.mark.parametrize(("request_body", "reason"), [
    ({"source_addr": ["not-an-address"]}, "invalid CIDR block"),
    ({"source": ["127.0.0.5"]}, "unknown field(s) 'source'"),
    ({"terse": "yes"}, "terse must be true or false"),
    ([], "must be a JSON object"),
])  # fmt: skip
async def test_a_filter_that_cannot_be_used_closes_the_trace_with_the_reason(
    make_node: MakeNode,
    request_body: Any,
    reason: str,
) -> None:
    node = await make_node(esmtp=ESMTP)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(node.http_url + SERVER_PATH)
        await ws.send_str(json.dumps(request_body))
        message = await asyncio.wait_for(ws.receive(), 5)
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1008
        assert reason in message.extra
    assert not SERVER_TRACE.active


class RawWebSocket:
    """A WebSocket client on a plain socket with a 4 KiB receive buffer, so that when it
    stops reading, it really does (aiohttp's client keeps reading into its own queue)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, node: Node, request: dict[str, Any]) -> RawWebSocket:
        host, port = node.http_url.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {SERVER_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                      ).encode())  # fmt: skip
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        payload = json.dumps(request).encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        return cls(reader, writer)

    async def receive(self) -> dict[str, Any]:
        """The next text frame's JSON (the server sends them unmasked, unfragmented)."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), 10)
        assert first == 0x81, first
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(await self.reader.readexactly(2))
        elif size == 127:
            size = int.from_bytes(await self.reader.readexactly(8))
        result: dict[str, Any] = json.loads(await self.reader.readexactly(size))
        return result

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def test_a_subscriber_that_never_reads_loses_old_events_and_stalls_nobody(
    make_node: MakeNode,
) -> None:
    node = await make_node(esmtp=ESMTP)
    worst_reply = 0.0
    busy = True
    # The listener runs on this loop: how late a short sleep wakes is the stall every
    # SMTP client would see.
    ticker = LoopTicker()

    async def other_client() -> None:
        nonlocal worst_reply
        client = await RecordingClient.connect(node.smtp_port, OTHER)
        await client.reply()
        while busy:
            started = time.monotonic()
            await client.say("NOOP\r\n")
            worst_reply = max(worst_reply, time.monotonic() - started)
            await asyncio.sleep(0.01)
        await client.close()

    async def flood() -> None:
        # Pipelined NOOPs (a Write event per reply) and 3 MiB messages (Read events of up
        # to 256 KiB): more events, and more bytes, than a subscriber may hold.
        client = await RecordingClient.connect(node.smtp_port, TRACED)
        await client.reply()
        for _ in range(10):
            client.writer.write(b"NOOP\r\n" * 3000)
            for _ in range(3000):
                await client.reply()
        after_noops.extend((subscriber.dropped_total, len(subscriber.queue), subscriber.bytes))
        for _ in range(4):
            await client.say("MAIL FROM:<a@example.org>\r\n")
            await client.say("RCPT TO:<b@example.com>\r\n")
            await client.say("DATA\r\n")
            await client.say("Subject: big\r\n\r\n" + ("x" * 998 + "\r\n") * 3000 + ".\r\n")
        await client.close()

    peak_events = peak_bytes = 0
    after_noops: list[int] = []  # dropped, queued events, queued bytes
    ws = await RawWebSocket.open(node, {})  # every session; and it stops reading
    for _ in range(200):
        if any(type(s.matches).__name__ == "ServerFilter" for s in SERVER_TRACE.subscribers):
            break
        await asyncio.sleep(0.01)
    subscriber = SERVER_TRACE.subscribers[0]
    ticker.start()
    tasks = [asyncio.create_task(other_client())]
    flooding = asyncio.create_task(flood())
    while not flooding.done():
        peak_events = max(peak_events, len(subscriber.queue))
        peak_bytes = max(peak_bytes, subscriber.bytes)
        await asyncio.sleep(0.001)
    await flooding
    busy = False
    await asyncio.gather(*tasks)
    await ticker.stop()
    dropped = subscriber.dropped_total
    # The NOOPs filled the queue by count (small events), the messages by bytes.
    assert after_noops[0] > 0 and after_noops[1] == MAX_EVENTS and after_noops[2] < MAX_BYTES
    assert dropped > after_noops[0]
    assert peak_events <= MAX_EVENTS and peak_bytes <= MAX_BYTES
    # Once it reads again it is told how many events it missed, in KumoMTA's words.
    missed = 0
    while missed < dropped:
        event = await ws.receive()
        if event["conn_meta"] is None:
            text = event["payload"]["Diagnostic"]["message"]
            assert text.startswith("Tracer Lagged behind and missed ")
            missed += int(text.split()[-2])
    assert missed == dropped
    await ws.close()
    assert worst_reply < 0.5, f"another SMTP client waited {worst_reply:.3f} s for a reply"
    assert ticker.longest < 0.5, f"the event loop stalled for {ticker.longest:.3f} s"
