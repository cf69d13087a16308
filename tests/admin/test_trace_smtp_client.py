"""``/api/admin/trace-smtp-client/v1``: a real node delivering to the test sink, WebSocket
subscribers with filters, and the delivery session's events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from kumocore.testing.node import SINK_HOST, Node
from kumocore.testing.plugin import MakeNode
from kumocore.trace.bus import CLIENT_TRACE
from kumocore.trace.ws import CLIENT_PATH

RECIPIENT = "rcpt@example.com"


async def subscribe(http: aiohttp.ClientSession, node: Node,
                    request: dict[str, Any]) -> aiohttp.ClientWebSocketResponse:  # fmt: skip
    ws = await http.ws_connect(node.http_url + CLIENT_PATH)
    await ws.send_str(json.dumps(request))
    for _ in range(200):
        if all(type(s.matches).__name__ == "ClientFilter" for s in CLIENT_TRACE.subscribers):
            return ws
        await asyncio.sleep(0.01)
    raise AssertionError("the trace subscription did not start")


async def drain(ws: aiohttp.ClientWebSocketResponse, idle: float,
                until: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Every event until one of kind ``until``, or none came for ``idle`` seconds."""
    events = []
    while True:
        try:
            message = await asyncio.wait_for(ws.receive(), idle)
        except TimeoutError:
            assert until is None, f"no {until} event: {events}"
            return events
        events.append(json.loads(message.data))
        if until is not None and kind(events[-1]) == until:
            return events


def kind(event: dict[str, Any]) -> str:
    payload = event["payload"]
    return payload if isinstance(payload, str) else next(iter(payload))


async def test_a_delivery_session_is_traced_and_a_filter_on_another_domain_stops_at_the_message(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    async with aiohttp.ClientSession() as http:
        traced = await subscribe(http, node, {"rcpt_to": [RECIPIENT], "domain": ["example.com"]})
        other = await subscribe(http, node, {"domain": ["other.example"]})
        await node.send(recipients=RECIPIENT)
        [delivery] = await node.wait_for("Delivery")
        assert node.sink is not None
        [received] = node.sink.messages
        events = await drain(traced, 10, until="Closed")  # the session idles out and QUITs
        others = await drain(other, 0.2)
        await traced.close()
        await other.close()
    kinds = [kind(e) for e in events]
    obtained = kinds.index("MessageObtained")
    assert kinds[:3] == ["BeginSession", "Connected", "Read"]
    assert events[2]["payload"]["Read"].startswith("220 ")
    assert events[3]["payload"] == {"Write": "EHLO node.kumocore.test\r\n"}
    assert set(kinds[4:obtained]) == {"Read"}  # the EHLO reply, a line per event
    writes = [e["payload"]["Write"] for e in events[obtained:] if kind(e) == "Write"]
    assert writes == [
        "MAIL FROM:<sender@example.org>\r\n", f"RCPT TO:<{RECIPIENT}>\r\n", "DATA\r\n",
        received.data.decode() + ".\r\n", "QUIT\r\n",
    ]  # fmt: skip
    assert kinds[obtained:] == ["MessageObtained", "Write", "Read", "Write", "Read", "Write",
                                "Read", "Write", "Read", "Write", "Closed"]  # fmt: skip
    assert events[-3]["payload"]["Read"].startswith("250 ")
    begin, message = events[0]["conn_meta"], events[obtained]["conn_meta"]
    assert begin["ready_queue_name"] == f"unspecified->{SINK_HOST}@smtp_client"
    assert begin["egress_source"] == "unspecified" and begin["egress_pool"] == "unspecified"
    assert begin["mx_plan"] == {"Addresses": [{"name": SINK_HOST, "addr": "127.0.0.1"}]}
    assert {key: message[key] for key in (
        "id", "mx_host", "mx_address", "message_id", "sender", "recipient", "domain",
        "routing_domain", "queue_name")} == {
        "id": begin["id"], "mx_host": SINK_HOST, "mx_address": "127.0.0.1",
        "message_id": delivery["id"], "sender": "sender@example.org",
        "recipient": [RECIPIENT], "domain": "example.com", "routing_domain": None,
        "queue_name": "example.com"}  # fmt: skip
    assert message["source_address"].startswith("127.0.0.1:")
    # Before the message, the domain is unknown and does not exclude; from it on, it does.
    other_kinds = [kind(e) for e in others]
    assert other_kinds == kinds[:obtained]
    assert not any("domain" in e["conn_meta"] for e in others)


async def test_terse_shows_the_message_payload_by_its_first_line_and_size(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    async with aiohttp.ClientSession() as http:
        ws = await subscribe(http, node, {"terse": True})
        await node.send(recipients=RECIPIENT, message="Subject: t\r\n\r\nbody\r\n")
        await node.wait_for("Delivery")
        events = await drain(ws, 10, until="Closed")
        await ws.close()
    assert node.sink is not None
    [received] = node.sink.messages
    abbreviated = [e["payload"]["AbbreviatedWrite"] for e in events
                   if kind(e) == "AbbreviatedWrite"]  # fmt: skip
    first_line = received.data.split(b"\r\n", 1)[0].decode()
    assert abbreviated == [{"snippet": first_line, "len": len(received.data) + 3}]
    assert {"Write": "DATA\r\n"} in [e["payload"] for e in events]  # one line: whole


async def test_a_host_that_refuses_the_connection_is_traced_as_an_error(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    assert node.sink is not None
    await node.sink.stop()  # nothing listens on the sink's port any more
    async with aiohttp.ClientSession() as http:
        ws = await subscribe(http, node, {})
        await node.send(recipients=RECIPIENT)
        await node.wait_for("TransientFailure")
        events = await drain(ws, 0.3)
        await ws.close()
    assert [kind(e) for e in events] == ["BeginSession", "Diagnostic"]
    diagnostic = events[1]["payload"]["Diagnostic"]
    assert diagnostic["level"] == "ERROR"
    assert diagnostic["message"].startswith(f"connection to {SINK_HOST} [127.0.0.1]:")
    assert "failed" in diagnostic["message"]
