"""The SMTP client's transaction for several recipients (``send_batch``): one reply per
recipient, DATA only after an accepted RCPT, and the session left usable, checked
against a real server on loopback (tests.support.rcpt_sink), pipelined and not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from kumocore.config import EgressPathConfig
from kumocore.delivery.client import SmtpClientConnection, open_connection
from tests.support.rcpt_sink import RcptSink

BODY = b"Subject: t\r\n\r\nhello\r\n"
THREE = ["a@dst.test", "b@dst.test", "c@dst.test"]


@pytest.fixture(params=[True, False], ids=["pipelining", "serial"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[RcptSink]:
    async with RcptSink(pipelining=request.param) as sink:
        yield sink


async def _connect(sink: RcptSink, **options: Any) -> SmtpClientConnection:
    path = EgressPathConfig.from_options({"enable_tls": "Disabled", "rcpt_to_timeout": "3s",
                                          "data_dot_timeout": "3s", **options})
    return await open_connection(mx_host="rcpt-sink.test", address="127.0.0.1",
                                 port=sink.port, source_address=None,
                                 ehlo_domain="client.test", path=path)


def _codes(replies: list[Any]) -> list[int]:
    return [reply.code for reply in replies]


async def test_each_recipient_gets_its_rcpt_refusal_or_the_final_reply(
    server: RcptSink,
) -> None:
    server.replies.update({"b@dst.test": "550 5.1.1 no such user",
                           "c@dst.test": "451 4.3.0 later"})
    conn = await _connect(server)
    try:
        replies = await conn.send_batch("s@src.test", THREE, BODY)
    finally:
        await conn.close()
    assert _codes(replies) == [250, 550, 451]
    assert replies[0].command == "." and replies[1].command == "RCPT TO"
    assert [t.recipients for t in server.transactions] == [["a@dst.test"]]
    assert server.transactions[0].body == BODY
    assert server.sent_ahead == 0 or server.pipelining


async def test_no_body_when_every_rcpt_is_refused_and_the_next_transaction_works(
    server: RcptSink,
) -> None:
    server.replies.update({name: "550 5.1.1 no such user" for name in THREE})
    conn = await _connect(server)
    try:
        refused = await conn.send_batch("s@src.test", THREE, BODY)
        assert not conn.closed
        server.replies.clear()
        accepted = await conn.send_batch("s@src.test", THREE[:2], BODY)
    finally:
        await conn.close()
    assert _codes(refused) == [550, 550, 550] and _codes(accepted) == [250, 250]
    assert [t.recipients for t in server.transactions] == [THREE[:2]]
    assert server.connections == 1
    assert "RSET" in server.verbs()[: server.verbs().index("MAIL", 2)]


async def test_a_data_354_after_every_rcpt_refused_is_ended_with_a_lone_dot() -> None:
    async with RcptSink(pipelining=True, data_reply="354 go ahead anyway") as sink:
        sink.replies.update({name: "550 5.1.1 no such user" for name in THREE[:2]})
        conn = await _connect(sink)
        try:
            refused = await conn.send_batch("s@src.test", THREE[:2], BODY)
            sink.replies.clear()
            sink.data_reply = None
            accepted = await conn.send_batch("s@src.test", THREE[:1], BODY)
        finally:
            await conn.close()
    assert _codes(refused) == [550, 550] and _codes(accepted) == [250]
    assert [t.recipients for t in sink.transactions] == [THREE[:1]]  # no body the first time


async def test_a_refused_data_is_the_reply_of_every_accepted_recipient(
    server: RcptSink,
) -> None:
    server.replies["b@dst.test"] = "550 5.1.1 no such user"
    server.data_reply = "451 4.3.0 not now"
    conn = await _connect(server)
    try:
        replies = await conn.send_batch("s@src.test", THREE, BODY)
    finally:
        await conn.close()
    assert _codes(replies) == [451, 550, 451]
    assert replies[0].command == "DATA"
    assert server.transactions == []


async def test_a_refused_final_reply_goes_to_the_accepted_recipients_only(
    server: RcptSink,
) -> None:
    server.replies["a@dst.test"] = "550 5.1.1 no such user"
    server.dot_reply = "554 5.7.1 content refused"
    conn = await _connect(server)
    try:
        replies = await conn.send_batch("s@src.test", THREE, BODY)
    finally:
        await conn.close()
    assert _codes(replies) == [550, 554, 554]


async def test_a_421_to_a_rcpt_is_every_recipients_reply_and_ends_the_session(
    server: RcptSink,
) -> None:
    server.replies["b@dst.test"] = "421 4.3.2 shutting down"
    conn = await _connect(server)
    try:
        replies = await conn.send_batch("s@src.test", THREE, BODY)
        assert conn.closed
    finally:
        await conn.close()
    assert _codes(replies) == [421, 421, 421]
    assert server.transactions == []


async def test_a_session_lost_mid_batch_fails_every_recipient_with_a_4xx() -> None:
    async with RcptSink(pipelining=False) as sink:
        conn = await _connect(sink)
        conn.writer.transport.abort()  # the connection breaks under the transaction
        replies = await conn.send_batch("s@src.test", THREE, BODY)
        await conn.close()
    assert len(replies) == 3 and all(reply.is_transient for reply in replies)
    assert len(set(replies)) == 1


async def test_over_lmtp_each_accepted_recipient_gets_its_own_reply_after_the_dot() -> None:
    async with RcptSink(lmtp=True) as sink:
        sink.replies["a@dst.test"] = "550 5.1.1 no such user"
        sink.lmtp_replies.update({"b@dst.test": "452 4.2.2 mailbox full"})
        conn = await _connect(sink, use_lmtp=True)
        try:
            replies = await conn.send_batch("s@src.test", THREE, BODY)
            again = await conn.send_batch("s@src.test", THREE[1:], BODY)  # still in step
        finally:
            await conn.close()
    assert _codes(replies) == [550, 452, 250] and _codes(again) == [452, 250]
    assert replies[2].content == "<c@dst.test> delivered"
    assert [t.recipients for t in sink.transactions] == [["c@dst.test"], ["c@dst.test"]]
    assert sink.verbs()[0] == "LHLO"
