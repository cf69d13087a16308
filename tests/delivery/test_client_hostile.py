"""The SMTP client against a hostile MX: every failure is a 4xx reply, never an exception,
and the connection is closed (issue 14, findings 9 and 10)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bench.common.hostile_mx import SHORT_TIMEOUTS, HostileMx
from kumocore.config import EgressPathConfig
from kumocore.delivery.client import SmtpClientConnection, open_connection
from kumocore.delivery.client_failure import ConnectFailure
from kumocore.mail.response import Response

BODY = b"Subject: t\r\n\r\nhello\r\n"


def _path(**options: Any) -> EgressPathConfig:
    return EgressPathConfig.from_options({**SHORT_TIMEOUTS, **options})


async def _connect(mx: HostileMx, **options: Any) -> SmtpClientConnection:
    return await open_connection(
        mx_host="mx.hostile.test",
        address="127.0.0.1",
        port=mx.port,
        source_address=None,
        ehlo_domain="client.test",
        path=_path(**options),
    )


async def _attempt(mx: HostileMx, **options: Any) -> Response:
    """Connect and send one message; the response that decides it, whatever happens."""
    try:
        conn = await _connect(mx, **options)
    except ConnectFailure as failure:
        return failure.response
    try:
        return await conn.send("a@src.test", "b@dst.test", BODY)
    finally:
        await conn.close()


async def _no_open_connections(mx: HostileMx) -> None:
    deadline = time.monotonic() + 5
    while mx.open_connections and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert mx.open_connections == 0


@pytest.mark.parametrize(
    ("mode", "text"),
    [
        ("oversized_banner", "reply line longer than 4096 bytes"),
        ("oversized_mail", "reply line longer than 4096 bytes"),
        ("oversized_rcpt", "reply line longer than 4096 bytes"),
        ("oversized_data", "reply line longer than 4096 bytes"),
        ("oversized_dot", "reply line longer than 4096 bytes"),
        ("endless_multiline", "reply of more than 100 lines"),
        ("garbage_banner", "malformed reply"),
        ("garbage", "malformed reply"),
        ("tls_garbage", "TLS handshake"),
        ("tls_silent", "TLS handshake with mx.hostile.test failed: TimeoutError"),
    ],
)
async def test_hostile_replies_end_as_a_transient_failure_and_a_closed_connection(
    mode: str, text: str
) -> None:
    async with HostileMx(mode) as mx:
        response = await asyncio.wait_for(_attempt(mx), 10)
        assert response.is_transient, response
        assert text in response.to_single_line()
        await _no_open_connections(mx)


async def test_a_reset_at_every_step_of_the_session_is_a_transient_failure() -> None:
    async with HostileMx("reset") as mx:
        seen = []
        for _ in range(5):  # the 5 connections break at EHLO, MAIL, RCPT, DATA, the dot
            response = await asyncio.wait_for(_attempt(mx), 10)
            assert response.is_transient, response
            seen.append(response.command)
        assert len(mx.messages) == 0
        await _no_open_connections(mx)


async def test_a_reply_dripped_one_byte_per_second_hits_the_banner_timeout() -> None:
    async with HostileMx("slow_drip", drip_interval=1.0) as mx:
        started = time.monotonic()
        response = await asyncio.wait_for(_attempt(mx, banner_timeout="1.5s"), 10)
        assert response.is_transient
        # The wait is printed as KumoMTA prints a Rust Duration: 1.5s, not 1s 500ms.
        assert "Timed Out waiting 1.5s for response to banner" in response.content
        assert time.monotonic() - started < 5
        await _no_open_connections(mx)


async def test_plaintext_injected_after_starttls_220_is_refused_not_read_as_tls() -> None:
    async with HostileMx("starttls_injection") as mx:
        response = await asyncio.wait_for(_attempt(mx), 10)
        assert not response.is_success, response
        assert response.is_transient
        assert "its 220 reply to STARTTLS" in response.to_single_line()
        await _no_open_connections(mx)


@pytest.mark.parametrize("enable_tls", ["Opportunistic", "OpportunisticInsecure", "Required"])
async def test_an_mx_that_offers_starttls_then_refuses_it_gets_no_mail_in_clear(
    enable_tls: str,
) -> None:
    async with HostileMx("starttls_454") as mx:
        response = await asyncio.wait_for(_attempt(mx, enable_tls=enable_tls), 10)
        assert response.is_transient, response
        assert response.code == 454 and "TLS not available" in response.to_single_line()
        assert mx.messages == []
        await _no_open_connections(mx)


async def test_benign_mx_with_starttls_still_delivers_over_tls() -> None:
    async with HostileMx("benign", starttls=True) as mx:
        conn = await _connect(mx)
        try:
            assert conn.tls
            response = await conn.send("a@src.test", "b@dst.test", BODY)
        finally:
            await conn.close()
        assert response.code == 250
        assert [m.recipient for m in mx.messages] == ["b@dst.test"]


async def test_a_send_after_the_connection_was_lost_is_a_transient_failure() -> None:
    async with HostileMx("reset") as mx:
        mx.connections.append(0.0)  # make the next connection break at MAIL (step 2)
        conn = await _connect(mx)
        first = await conn.send("a@src.test", "b@dst.test", BODY)
        second = await conn.send("a@src.test", "b@dst.test", BODY)
        await conn.close()
        assert first.is_transient and second.is_transient
        assert conn.closed


async def test_an_mx_that_stops_reading_the_body_times_out_sending_the_payload() -> None:
    async with HostileMx("stall_data") as mx:
        conn = await _connect(mx, data_dot_timeout="1s")
        started = time.monotonic()
        # Far more than the socket buffers of both ends hold on loopback.
        body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 40_000
        response = await asyncio.wait_for(conn.send("a@src.test", "b@dst.test", body), 10)
        await conn.close()
        assert response.is_transient
        # A write that times out is not a reply that did not come: KumoMTA's words.
        assert response.to_single_line() == (
            "400 KumoMTA internal: failed to send message: "
            "Timed Out sending message payload data")
        assert conn.failure == response
        assert time.monotonic() - started < 5
        assert conn.writer.transport.is_closing()


def test_a_timed_out_command_write_is_worded_apart_from_a_missing_reply() -> None:
    from kumocore.delivery.client_failure import failure_reason, failure_response
    from kumocore.delivery.wire import WriteTimeout

    where = {"site": "src->mx.example@smtp_client", "peer": "mx.example [192.0.2.1]"}
    unread = WriteTimeout("RSET, MAIL FROM, RCPT TO, DATA", 300)
    assert failure_response(unread, "RSET", timeout=300, **where).to_single_line() == (
        "421 4.4.2 KumoMTA internal: failed to send message to src->mx.example@smtp_client "
        "mx.example [192.0.2.1]: Timed Out waiting 300s to write RSET, MAIL FROM, RCPT TO, DATA")
    silent = TimeoutError("no reply")
    assert failure_response(silent, "MAIL FROM", timeout=300, **where).content.endswith(
        "Timed Out waiting 300s for response to MAIL FROM")
    assert failure_reason(WriteTimeout("EHLO", 2.5), "EHLO", 2.5) == (
        "Timed Out after 2.5s writing EHLO")
