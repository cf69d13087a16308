"""Hostile tracing clients: one that floods the node while a catch-all trace reads in
another process, one that disconnects while the node is blocked sending to it, and one
whose filter message is too large."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from kumocore.admin.peers import NodePeers, socket_path
from kumocore.testing.plugin import MakeNode
from kumocore.trace.bus import SERVER_TRACE, Subscriber
from kumocore.trace.relay import relay_other_workers
from kumocore.trace.ws import MAX_REQUEST, SERVER_PATH
from tests.admin.test_trace_smtp_server import (
    ESMTP,
    OTHER,
    TRACED,
    RawWebSocket,
    RecordingClient,
    conversation,
)
from tests.support.ticker import LoopTicker

ATTACKER = """
import asyncio, json, sys, aiohttp

async def reply(reader):
    while True:
        raw = await reader.readline()
        if raw[3:4] != b"-":
            return raw

async def main(port, url):
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url, max_msg_size=0)
        await ws.send_str("{}")
        got = 0
        async def read():
            nonlocal got
            async for message in ws:
                got += 1
        reading = asyncio.create_task(read())
        await asyncio.sleep(0.3)
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       local_addr=("127.0.0.5", 0))
        await reply(reader)
        for _ in range(10):
            writer.write(b"NOOP\\r\\n" * 3000)
            for _ in range(3000):
                await reply(reader)
        body = ("Subject: big\\r\\n\\r\\n" + ("x" * 998 + "\\r\\n") * 3000 + ".\\r\\n").encode()
        for _ in range(4):
            writer.write(b"MAIL FROM:<a@example.org>\\r\\nRCPT TO:<b@example.com>\\r\\nDATA\\r\\n")
            for _ in range(3):
                await reply(reader)
            writer.write(body)
            assert (await reply(reader)).startswith(b"250")
        writer.write(b"QUIT\\r\\n")
        await reply(reader)
        writer.close()
        await asyncio.sleep(0.5)
        reading.cancel()
        print(got)

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


async def test_a_catch_all_trace_of_a_pipelining_multi_mib_flood_stalls_nobody(
    make_node: MakeNode, tmp_path: Path
) -> None:
    # The flooding client and the tracing client run in another process, so that the
    # ticker measures only the node's own work (both on this loop stalled it 70-380 ms:
    # building and reading multi-MiB test data, not the trace).
    node = await make_node(esmtp=ESMTP)
    # A first delivery outside the measurement: the resolver's first lookup (lazy
    # imports, about 70 ms) is no cost of tracing.
    await conversation(node.smtp_port, OTHER)
    await node.wait_for("Delivery")
    script = tmp_path / "attacker.py"
    script.write_text(ATTACKER)
    async with LoopTicker() as ticker:
        attacker = await asyncio.create_subprocess_exec(
            sys.executable, str(script), str(node.smtp_port), node.http_url + SERVER_PATH,
            stdout=asyncio.subprocess.PIPE)  # fmt: skip
        out, _ = await asyncio.wait_for(attacker.communicate(), 120)
    assert attacker.returncode == 0
    assert int(out) > 30_000  # a Read and a Write per NOOP, at the least
    stall = ticker.longest_overrun
    assert stall < 0.05, f"the event loop stalled for {stall:.3f} s"


async def test_a_tracer_that_vanishes_while_the_node_waits_to_send_is_unsubscribed(
    make_node: MakeNode,
) -> None:
    node = await make_node(esmtp=ESMTP)
    ws = await RawWebSocket.open(node, {})  # never reads: the node's sends block
    for _ in range(200):
        if any(type(s.matches).__name__ == "ServerFilter" for s in SERVER_TRACE.subscribers):
            break
        await asyncio.sleep(0.01)
    client = await RecordingClient.connect(node.smtp_port, TRACED)
    await client.reply()
    await client.say("EHLO client.test\r\n")
    for _ in range(3):
        await client.say("MAIL FROM:<a@example.org>\r\n")
        await client.say("RCPT TO:<b@example.com>\r\n")
        await client.say("DATA\r\n")
        await client.say("Subject: big\r\n\r\n" + ("x" * 998 + "\r\n") * 1000 + ".\r\n")
    tasks_before = {t.get_name() for t in asyncio.all_tasks()}
    # An abortive close (RST): no close frame, no FIN to read.
    sock = ws.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.writer.transport.abort()
    for _ in range(300):
        if not SERVER_TRACE.active:
            break
        await asyncio.sleep(0.01)
    assert SERVER_TRACE.subscribers == [] and not SERVER_TRACE.active
    await client.say("NOOP\r\n")  # the session goes on, untraced
    await client.close()
    leftovers = [t for t in asyncio.all_tasks()
                 if t.get_name() in tasks_before and "_pump" in repr(t.get_coro())]  # fmt: skip
    assert leftovers == []


async def test_a_filter_message_over_the_limit_closes_the_trace_with_a_clear_reason(
    make_node: MakeNode,
) -> None:
    node = await make_node(esmtp=ESMTP)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(node.http_url + SERVER_PATH)
        cidrs = [f"10.{i // 256 % 256}.{i % 256}.0/24" for i in range(MAX_REQUEST // 10)]
        await ws.send_str(json.dumps({"source_addr": cidrs}))
        message = await asyncio.wait_for(ws.receive(), 5)
        assert message.type == aiohttp.WSMsgType.CLOSE, message
        assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG  # 1009, before parsing
    for _ in range(100):
        if not SERVER_TRACE.active:
            break
        await asyncio.sleep(0.01)
    assert not SERVER_TRACE.active


async def test_a_worker_whose_trace_link_dies_is_reported_and_traced_again(
    tmp_path: Path,
) -> None:
    # The other worker (index 1) is a WebSocket on its private socket that relays one
    # event per life; it dies after the first and is restarted.
    lives = 0

    async def worker_trace(request: web.Request) -> web.WebSocketResponse:
        nonlocal lives
        lives += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()  # the filter
        await ws.send_str(json.dumps({"conn_meta": None, "payload": f"life {lives}"}))
        if lives > 1:
            await ws.receive()  # lives on, until the trace ends
        return ws  # closed: the worker is gone

    peers = NodePeers(tmp_path, 0, 2)
    app = web.Application()
    app.router.add_get(SERVER_PATH, worker_trace)

    async def start_worker() -> web.AppRunner:
        runner = web.AppRunner(app)
        await runner.setup()
        await web.UnixSite(runner, str(socket_path(tmp_path, 1))).start()
        return runner

    subscriber = Subscriber(lambda meta: True)
    runner = await start_worker()
    relays = relay_other_workers(peers, SERVER_PATH, "{}", subscriber)
    try:
        events = [await asyncio.wait_for(subscriber.get(), 5) for _ in range(2)]
        await runner.cleanup()  # the worker dies, and is restarted a moment later
        runner = await start_worker()
        events += [await asyncio.wait_for(subscriber.get(), 5) for _ in range(2)]
    finally:
        for relay in relays:
            relay.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
        await runner.cleanup()
    texts = [json.loads(e.to_json())["payload"] for e in events]
    assert texts[0] == "life 1"
    assert texts[1]["Diagnostic"]["level"] == "ERROR"
    assert "lost the trace of worker 1" in texts[1]["Diagnostic"]["message"]
    assert texts[2] == {"Diagnostic": {"level": "INFO", "message": "worker 1 is traced again"}}
    assert texts[3] == "life 2"


async def test_tracing_clients_past_the_limit_get_429_and_a_place_frees_when_one_leaves(
    make_node: MakeNode, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kumocore.trace import ws as trace_ws

    monkeypatch.setattr(trace_ws, "MAX_SUBSCRIBERS", 3)
    node = await make_node(esmtp=ESMTP)
    async with aiohttp.ClientSession() as http:
        tracers = [await http.ws_connect(node.http_url + SERVER_PATH) for _ in range(3)]
        for tracer in tracers:
            await tracer.send_str("{}")
        async with http.get(node.http_url + SERVER_PATH,
                            headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                     "Sec-WebSocket-Version": "13",
                                     "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as refused:
            assert refused.status == 429
            assert "too many tracing clients" in (await refused.json())["error"]
        await tracers[0].close()
        for _ in range(100):
            if len(SERVER_TRACE.subscribers) < 3:
                break
            await asyncio.sleep(0.01)
        again = await http.ws_connect(node.http_url + SERVER_PATH)
        await again.send_str("{}")
        for tracer in [again, *tracers[1:]]:
            await tracer.close()
