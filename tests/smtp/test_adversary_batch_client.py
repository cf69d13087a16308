"""The batch client (``send_batch``) against a hostile or broken LMTP server: a reply
the server gave for one recipient stands even when the session breaks before the next
recipient's reply (else a recipient already delivered is retried, and delivered twice)."""

from __future__ import annotations

from kumocore.config import EgressPathConfig
from kumocore.delivery.client import SmtpClientConnection, open_connection
from tests.support.rcpt_sink import RcptSink

BODY = b"Subject: t\r\n\r\nhello\r\n"
THREE = ["a@dst.test", "b@dst.test", "c@dst.test"]


async def _connect(sink: RcptSink) -> SmtpClientConnection:
    path = EgressPathConfig.from_options(
        {
            "enable_tls": "Disabled",
            "use_lmtp": True,
            "rcpt_to_timeout": "3s",
            "data_dot_timeout": "1s",
        }
    )
    return await open_connection(
        mx_host="rcpt-sink.test",
        address="127.0.0.1",
        port=sink.port,
        source_address=None,
        ehlo_domain="client.test",
        path=path,
    )


async def test_lmtp_replies_received_before_a_garbled_one_stand() -> None:
    async with RcptSink(lmtp=True) as sink:
        sink.lmtp_replies["b@dst.test"] = "this is no SMTP reply"
        conn = await _connect(sink)
        try:
            replies = await conn.send_batch("s@src.test", THREE, BODY)
        finally:
            await conn.close()
    # a was delivered (its 250 came); b's reply was garbage and c's never read: the
    # session is lost for them, a 4xx each (retried), not for a.
    assert replies[0].code == 250 and replies[0].content == "<a@dst.test> delivered"
    assert replies[1] == replies[2] and replies[1].is_transient, replies
    assert "malformed reply" in replies[1].content
    assert conn.closed


async def test_lmtp_replies_received_before_the_server_goes_silent_stand() -> None:
    async with RcptSink(lmtp=True) as sink:
        # The reply for b never ends (no last line): a read timeout for b and c.
        sink.lmtp_replies["b@dst.test"] = "250-b is being delivered"
        conn = await _connect(sink)
        try:
            replies = await conn.send_batch("s@src.test", THREE[:2], BODY)
        finally:
            await conn.close()
    assert [r.code for r in replies] == [250, 421], replies
    assert "4.4.2" in replies[1].to_single_line()


async def test_a_reply_too_many_in_a_serial_envelope_fails_the_session_not_the_recipients() -> None:
    # Two replies to a's RCPT: b's RCPT would read the second as its own and DATA b's
    # real refusal, a bounce for both although the MX accepted a.
    async with RcptSink(pipelining=False) as sink:
        sink.replies["a@dst.test"] = "250 2.1.5 a ok\r\n250 2.1.5 a ok again"
        sink.replies["b@dst.test"] = "550 5.1.1 no such user"
        sink.data_reply = "354 go ahead"
        path = EgressPathConfig.from_options({"enable_tls": "Disabled", "data_timeout": "3s"})
        conn = await open_connection(
            mx_host="rcpt-sink.test",
            address="127.0.0.1",
            port=sink.port,
            source_address=None,
            ehlo_domain="client.test",
            path=path,
        )
        try:
            replies = await conn.send_batch("s@src.test", THREE[:2], BODY)
        finally:
            await conn.close()
    assert all(reply.is_transient for reply in replies), replies
    assert "protocol violation" in replies[0].content
    assert conn.closed and sink.transactions == []
