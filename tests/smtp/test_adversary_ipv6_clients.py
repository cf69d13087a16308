"""One machine on IPv6 owns a /64: 2^64 source addresses to connect from.

Counted per address, ``max_connections_per_peer``, the AUTH failure limit and the DATA
budget's per-client share did not limit such a client at all. They count a /64 as one
client now (:mod:`kumocore.reception.client_net`). The test reaches the listener through
a trusted proxy's PROXY header, the one way a loopback test can arrive from many IPv6
addresses.
"""

from __future__ import annotations

import asyncio

from bench.common.smtp_client import RawSmtpClient
from kumocore.reception.smtp.limits import AuthFailures
from kumocore.reception.smtp.proxy_protocol import encode_v2
from tests.smtp.conftest import SmtpEnv, StartSmtp

PROXY_HOST = "127.0.0.9"
TRUSTED_PROXY = {PROXY_HOST: {"require_proxy_protocol": True}}


async def _greeting_from(env: SmtpEnv, source: str) -> str:
    client = await RawSmtpClient.connect(env.port, source=PROXY_HOST)
    await client.send(encode_v2((source, 4242), ("::1", env.port)))
    return str(await client.read_reply())


async def test_addresses_of_one_ipv6_64_share_the_per_peer_connection_cap(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(peer=TRUSTED_PROXY, max_connections_per_peer=3)
    greetings = [await _greeting_from(env, f"2001:db8:1:2::{n}") for n in range(1, 6)]
    assert [g[:3] for g in greetings] == ["220", "220", "220", "421", "421"], greetings
    assert greetings[3].startswith("421 4.3.2 mx.kumocore.test too many connections from")
    # Another /64 is another client.
    assert (await _greeting_from(env, "2001:db8:1:3::1")).startswith("220")
    assert len(env.listener.sessions) == 4


def test_auth_failures_from_one_ipv6_64_are_counted_together() -> None:
    failures = AuthFailures(limit=10, window=600)
    for n in range(10):
        failures.record(f"2001:db8:1:2::{n:x}", now=0.0)
    assert failures.blocked("2001:db8:1:2:ffff:ffff:ffff:ffff", now=1.0)
    assert not failures.blocked("2001:db8:1:3::1", now=1.0)
    assert not failures.blocked("192.0.2.1", now=1.0)
    assert len(failures) == 1  # one client remembered, not ten


async def _unfinished_data(env: SmtpEnv, source: str) -> RawSmtpClient:
    """A session from ``source`` (through the proxy) that has sent 800 KB of DATA
    without its end."""
    client = await RawSmtpClient.connect(env.port, source=PROXY_HOST)
    await client.send(encode_v2((source, 4242), ("::1", env.port)))
    await client.hello()
    await client.command("MAIL FROM:<a@example.com>")
    assert (await client.command("RCPT TO:<b@example.com>")).code == 250
    assert (await client.command("DATA")).code == 354
    await client.send("Subject: x\r\n\r\n" + ("y" * 78 + "\r\n") * 10_000)
    await asyncio.sleep(0.3)
    return client


async def test_addresses_of_one_ipv6_64_share_one_client_s_data_budget(
    start_smtp: StartSmtp,
) -> None:
    # The share of one client is an eighth of the budget, at least one max_message_size.
    env = await start_smtp(
        peer=TRUSTED_PROXY,
        max_data_buffered="8 MiB",
        max_message_size="1 MiB",
        domains={"example.com": {"relay_to": True}},
    )
    first = await _unfinished_data(env, "2001:db8:1:2::1")
    second = await _unfinished_data(env, "2001:db8:1:2::2")  # the same client
    other = await _unfinished_data(env, "2001:db8:1:3::1")  # another client
    for client in (first, second, other):
        await client.send(".\r\n")
    replies = [str(await client.read_reply()) for client in (first, second, other)]
    assert replies[0].startswith("250") and replies[2].startswith("250"), replies
    assert replies[1].startswith("452 4.3.1"), replies
