"""``trace-smtp-server``: every policy event the listener runs for a session is traced as
KumoMTA's ``Callback`` ``{name, result, error}``, between the command's ``Read`` and its
reply's ``Write``; while nobody traces, no event is wrapped at all."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from kumocore import Rejection, hookimpl
from kumocore.mail.message import EnvelopeAddress, Message
from kumocore.testing.plugin import MakeNode
from kumocore.trace.bus import SERVER_TRACE
from tests.admin.test_trace_smtp_server import (
    ESMTP,
    TRACED,
    RecordingClient,
    events_until_closed,
    subscribe,
)

EXTENSIONS_SHOWN = ["PIPELINING", "8BITMIME"]


class Policy:
    """Handlers for the session's events: one answers, one refuses a recipient."""

    @hookimpl
    def kumo_smtp_server_ehlo(self, domain: str, extensions: list[str]) -> list[str]:
        return [e for e in extensions if e in EXTENSIONS_SHOWN]

    @hookimpl
    def kumo_smtp_server_mail_from(self, sender: EnvelopeAddress) -> None:
        return None

    @hookimpl
    def kumo_smtp_server_mail_rcpt_to(self, recipient: EnvelopeAddress) -> None:
        if recipient.user == "refused":
            raise Rejection(550, "5.1.1 no such user")

    @hookimpl
    def kumo_smtp_server_data(self, message: Message) -> None:
        return None

    @hookimpl
    def kumo_smtp_server_message_received(self, message: Message) -> None:
        message.set_meta("seen", True)


async def session(port: int) -> None:
    client = await RecordingClient.connect(port, TRACED)
    await client.reply()
    await client.say("EHLO client.test\r\n")
    await client.say("MAIL FROM:<sender@example.org>\r\n")
    await client.say("RCPT TO:<refused@example.com>\r\n")
    await client.say("RCPT TO:<rcpt@example.com>\r\n")
    await client.say("DATA\r\n")
    await client.say("Subject: traced\r\n\r\nbody\r\n.\r\n")
    await client.say("QUIT\r\n")
    await client.close()


def _callbacks(events: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    return [(i, e["payload"]["Callback"]) for i, e in enumerate(events)
            if isinstance(e["payload"], dict) and "Callback" in e["payload"]]  # fmt: skip


async def test_each_policy_event_of_a_session_is_traced_between_command_and_reply(
    make_node: MakeNode,
) -> None:
    node = await make_node(esmtp=ESMTP, plugins=[Policy()])
    async with aiohttp.ClientSession() as http:
        ws = await subscribe(http, node, {"source_addr": [f"{TRACED}/32"]})
        await session(node.smtp_port)
        events = await events_until_closed(ws)
        await ws.close()
    callbacks = _callbacks(events)
    names = [c["name"] for _, c in callbacks if not c["name"].startswith("get_listener_domain")]
    assert names == [
        "smtp_server_connection_accepted", "smtp_server_ehlo", "smtp_server_mail_from",
        "smtp_server_rcpt_to", "smtp_server_rcpt_to", "smtp_server_data",
        "smtp_server_message_received",
    ]  # fmt: skip
    by_name: dict[str, list[dict[str, Any]]] = {}
    for _, callback in callbacks:
        by_name.setdefault(callback["name"], []).append(callback)
    assert by_name["smtp_server_ehlo"] == [
        {"name": "smtp_server_ehlo", "result": EXTENSIONS_SHOWN, "error": None}
    ]
    refused, taken = by_name["smtp_server_rcpt_to"]
    assert refused == {"name": "smtp_server_rcpt_to", "result": None,
                       "error": "550 5.1.1 no such user"}  # fmt: skip
    assert taken == {"name": "smtp_server_rcpt_to", "result": None, "error": None}
    assert by_name["get_listener_domain domain=example.com"][0]["error"] is None
    # Each command's callback comes after its line was read and before its reply.
    for index, callback in callbacks:
        verb = {"smtp_server_ehlo": "EHLO", "smtp_server_mail_from": "MAIL",
                "smtp_server_rcpt_to": "RCPT"}.get(callback["name"])  # fmt: skip
        if verb is None:
            continue
        reads = [e["payload"]["Read"] for e in events[:index]
                 if isinstance(e["payload"], dict) and "Read" in e["payload"]]  # fmt: skip
        assert reads[-1].startswith(verb)
        after = events[index + 1]["payload"]
        assert isinstance(after, dict) and ("Write" in after or "Callback" in after)
    # The traced session's meta goes with each callback, as with every other event.
    assert all(events[i]["conn_meta"]["received_from"].startswith(TRACED) for i, _ in callbacks)
    received = next(i for i, c in callbacks if c["name"] == "smtp_server_message_received")
    disposition = next(
        i
        for i, e in enumerate(events)
        if isinstance(e["payload"], dict) and "MessageDisposition" in e["payload"]
    )
    assert received < disposition  # fmt: skip


async def test_without_a_tracer_no_policy_event_is_wrapped(
    make_node: MakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrapped: list[str] = []

    def record(conn_meta: dict[str, Any], name: str, call: Any, *rest: Any) -> Any:
        wrapped.append(name)
        return call

    for facade in ("kumocore.policy.hooks_smtp", "kumocore.policy.hooks_lookup"):
        monkeypatch.setattr(f"{facade}.traced_callback", record)
    node = await make_node(esmtp=ESMTP, plugins=[Policy()])
    assert not SERVER_TRACE.active
    await session(node.smtp_port)
    await node.wait_for("Reception")
    assert wrapped == []
    # ...and with one, every event is (the same session, the same patch).
    async with aiohttp.ClientSession() as http:
        ws = await subscribe(http, node, {})
        await session(node.smtp_port)
        await node.wait_for("Reception", count=2)
        await ws.close()
    assert "smtp_server_message_received" in wrapped and "smtp_server_ehlo" in wrapped
