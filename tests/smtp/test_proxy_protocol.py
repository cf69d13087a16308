"""Inbound connections through a proxy: the PROXY protocol (v1 and v2, through a real
HAProxy) from peers whose ``peer`` block sets ``require_proxy_protocol``, and XCLIENT
from peers with ``allow_xclient``. The proxied client's address decides relaying and is
what the replies and the connection meta name."""

from __future__ import annotations

import asyncio
import os

import pytest

from bench.common.smtp_client import RawSmtpClient
from kumocore.reception.smtp.proxy_protocol import (
    ProxyHeaderError,
    encode_v2,
    parse_v1,
    read_header,
)
from tests.smtp.conftest import StartSmtp
from tests.support.proxies import HAPROXY, haproxy_in_front_of

PROXY_HOST = "127.0.0.9"  # where HAProxy connects from: the only trusted proxy
TRUSTED_PROXY = {PROXY_HOST: {"require_proxy_protocol": True}}

needs_haproxy = pytest.mark.skipif(not os.path.exists(HAPROXY), reason="haproxy not installed")


async def _rcpt_reply(port: int, host: str, source: str) -> str:
    client = await RawSmtpClient.connect(port, host=host, source=source)
    await client.hello()
    await client.command("MAIL FROM:<a@anywhere.example>")
    reply = await client.command("RCPT TO:<b@other.example>")
    await client.close()
    return str(reply)


@needs_haproxy
@pytest.mark.parametrize("version", [1, 2])
async def test_relay_decision_uses_the_address_haproxy_reports(
    start_smtp: StartSmtp, version: int
) -> None:
    env = await start_smtp(peer=TRUSTED_PROXY)
    with haproxy_in_front_of("127.0.0.8", ("127.0.0.1", env.port), source=PROXY_HOST,
                             version=version) as port:
        # 127.0.0.1 is in relay_hosts; HAProxy itself (127.0.0.9) is not.
        assert await _rcpt_reply(port, "127.0.0.8", "127.0.0.1") == "250 2.1.5 OK"
        refused = await _rcpt_reply(port, "127.0.0.8", "127.0.0.5")
    assert refused.startswith("550 5.7.1 relaying not permitted for 127.0.0.5:"), refused


async def test_trusted_proxy_without_a_header_gets_no_banner(start_smtp: StartSmtp) -> None:
    env = await start_smtp(peer=TRUSTED_PROXY)
    client = await RawSmtpClient.connect(env.port, source=PROXY_HOST)
    await client.send("EHLO not-a-proxy\r\n")
    assert await client.closed()


async def test_malformed_v1_header_closes_the_connection(start_smtp: StartSmtp) -> None:
    env = await start_smtp(peer=TRUSTED_PROXY)
    client = await RawSmtpClient.connect(env.port, source=PROXY_HOST)
    await client.send("PROXY TCP4 999.0.0.1 127.0.0.1 5 25\r\n")
    assert await client.closed()


async def test_v2_header_sent_by_hand_sets_the_peer(start_smtp: StartSmtp) -> None:
    env = await start_smtp(peer=TRUSTED_PROXY)
    client = await RawSmtpClient.connect(env.port, source=PROXY_HOST)
    await client.send(encode_v2(("127.0.0.5", 4242), ("127.0.0.1", env.port)))
    await client.hello()
    await client.command("MAIL FROM:<a@anywhere.example>")
    reply = await client.command("RCPT TO:<b@other.example>")
    assert str(reply) == "550 5.7.1 relaying not permitted for 127.0.0.5:4242"


async def test_untrusted_peer_cannot_claim_another_address(start_smtp: StartSmtp) -> None:
    env = await start_smtp(peer=TRUSTED_PROXY)
    client = await RawSmtpClient.connect(env.port, source="127.0.0.5")
    assert (await client.read_reply()).code == 220
    reply = await client.command("PROXY TCP4 127.0.0.1 127.0.0.1 5 25")
    assert str(reply) == "500 5.5.1 command not recognized"
    await client.command("EHLO x")
    await client.command("MAIL FROM:<a@anywhere.example>")
    reply = await client.command("RCPT TO:<b@other.example>")
    assert str(reply).startswith("550 5.7.1 relaying not permitted for 127.0.0.5:")


async def test_xclient_changes_the_peer_for_allowed_peers_only(start_smtp: StartSmtp) -> None:
    env = await start_smtp(peer={"127.0.0.1": {"allow_xclient": True}})
    client = await env.session("127.0.0.1")
    reply = await client.command("XCLIENT ADDR=127.0.0.5 PORT=2525")
    assert reply.code == 220
    await client.command("EHLO x")
    await client.command("MAIL FROM:<a@anywhere.example>")
    reply = await client.command("RCPT TO:<b@other.example>")
    assert str(reply) == "550 5.7.1 relaying not permitted for 127.0.0.5:2525"

    other = await env.session("127.0.0.5")
    ehlo = await other.command("EHLO y")
    assert not any(line.startswith("XCLIENT") for line in ehlo.lines)
    assert str(await other.command("XCLIENT ADDR=127.0.0.1")) == \
        "550 5.7.0 insufficient authorization"


async def test_xclient_refuses_unknown_attributes_and_bad_addresses(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(peer={"127.0.0.1": {"allow_xclient": True}})
    client = await env.session("127.0.0.1")
    ehlo = await client.command("EHLO x")
    assert "XCLIENT ADDR PORT DESTADDR DESTPORT" in ehlo.lines
    assert (await client.command("XCLIENT NAME=spoofed.example")).code == 501
    assert (await client.command("XCLIENT ADDR=not-an-ip")).code == 501
    assert (await client.command("XCLIENT PORT=²")).code == 501  # a digit, not a number
    assert (await client.command("XCLIENT PORT=65536")).code == 501  # past the last port
    assert (await client.command("XCLIENT PORT=000025")).code == 501  # six digits


def _reader(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_v2_header_round_trips_ipv4_and_ipv6() -> None:
    for src, dst in (("192.0.2.1", "198.51.100.2"), ("2001:db8::1", "2001:db8::2")):
        parsed = await read_header(_reader(encode_v2((src, 1234), (dst, 25)) + b"EHLO"))
        assert (parsed.source, parsed.destination) == ((src, 1234), (dst, 25))


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 192.0.2.1 192.0.2.2 70000 25\r\n",
    b"PROXY TCP4 2001:db8::1 192.0.2.2 1 25\r\n",
    b"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n",
    b"PROXY UDP4 192.0.2.1 192.0.2.2 1 25\r\n",
    "PROXY TCP4 192.0.2.1 192.0.2.2 ² 25\r\n".encode(),
])
def test_malformed_v1_lines_are_refused(line: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse_v1(line)


async def test_endless_v1_line_is_refused_after_107_bytes() -> None:
    with pytest.raises(ProxyHeaderError, match="too long"):
        await read_header(_reader(b"PROXY " + b"1" * 500))


async def test_v2_header_with_huge_length_is_refused_before_reading_it() -> None:
    header = encode_v2(("192.0.2.1", 1), ("192.0.2.2", 25))
    huge = header[:14] + (60000).to_bytes(2, "big")
    with pytest.raises(ProxyHeaderError, match="too long"):
        await read_header(_reader(huge))


async def test_silent_trusted_proxy_is_cut_at_client_timeout_without_smtp_text(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(peer=TRUSTED_PROXY, client_timeout=0.5)
    client = await RawSmtpClient.connect(env.port, source=PROXY_HOST)
    assert await asyncio.wait_for(client.reader.read(), 5) == b""
