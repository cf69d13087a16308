"""``max_connection_rate_per_peer``: new connections per client and period (a KumoMTA
throttle spec), checked before the banner — and so before any STARTTLS handshake.

The adversary round's finding: one address opening and closing connections as fast as
it could (400-500 STARTTLS handshakes a second) stayed within
``max_connections_per_peer`` and filled a core of the listener."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bench.common.smtp_client import RawSmtpClient
from kumocore.config import EsmtpListenerConfig
from kumocore.errors import ConfigError
from kumocore.reception.connection_rates import MAX_TRACKED_PEERS, ConnectionRates
from kumocore.throttle.spec import ThrottleSpec
from tests.reception.harness import HOSTNAME, lua_policy_listener, make_reception
from tests.smtp.conftest import SmtpEnv, StartSmtp

PEER = "127.0.0.5"
OTHER = "127.0.0.6"
SECOND_NS = 1_000_000_000


def _over_rate(peer: str, spec: str) -> str:
    return (f"421 4.7.0 {HOSTNAME} too many connections from {peer} "
            f"(max_connection_rate_per_peer {spec}). Try later")


class FakeClock:
    """Nanoseconds that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000 * SECOND_NS

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * SECOND_NS)


async def _greeting(env: SmtpEnv, source: str) -> str:
    """The first reply a new connection from ``source`` gets; the connection is closed."""
    client = await env.client(source)
    try:
        return str(await client.read_reply())
    finally:
        await client.close()


def _fake_clock(env: SmtpEnv) -> FakeClock:
    clock = FakeClock()
    env.listener.connection_rates = ConnectionRates(clock=clock)
    return clock


# ---------------------------------------------------------------------- the listener


async def test_connections_over_the_rate_get_421_4_7_0_and_are_closed(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(max_connection_rate_per_peer="3/m")
    counts = env.reception.runtime.services.metrics.smtp_server
    denied_before = counts.denied
    for _ in range(3):
        assert (await _greeting(env, PEER)).startswith("220 ")
    client = await env.client(PEER)
    assert str(await client.read_reply()) == _over_rate(PEER, "3/m")
    assert await client.closed()
    # Counted like the other refusals at connect (total_connections_denied), and, like
    # them, no Rejection record: a flood must not become as many log records.
    assert counts.denied == denied_before + 1
    assert await env.reception.records("Rejection", settle=0.1) == []


async def test_connections_within_the_rate_are_all_served(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_connection_rate_per_peer="20/m")
    for _ in range(20):
        client = await env.session(PEER)  # greeted, and EHLO answered
        assert (await client.command("QUIT")).code == 221
        await client.close()
    assert len(env.listener.connection_rates) == 1


async def test_the_rate_is_off_by_default(start_smtp: StartSmtp) -> None:
    env = await start_smtp()
    assert env.listener.config.max_connection_rate_per_peer is None
    for _ in range(60):
        assert (await _greeting(env, PEER)).startswith("220 ")
    assert len(env.listener.connection_rates) == 0  # nothing tracked either


async def test_relay_hosts_are_exempt_from_the_rate(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_connection_rate_per_peer="1/h", relay_hosts=["127.0.0.1", PEER])
    for _ in range(5):
        assert (await _greeting(env, PEER)).startswith("220 ")
    assert len(env.listener.connection_rates) == 0


async def test_a_client_over_the_rate_does_not_affect_another_client(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(max_connection_rate_per_peer="2/h")
    for _ in range(2):
        assert (await _greeting(env, PEER)).startswith("220 ")
    for _ in range(5):
        assert await _greeting(env, PEER) == _over_rate(PEER, "2/h")
    # Another client has its own bucket, and a refused one charged nothing to it.
    assert (await _greeting(env, OTHER)).startswith("220 ")
    client = await env.session(OTHER)
    assert (await client.command("NOOP")).code == 250


async def test_the_window_slides_one_connection_comes_back_per_interval(
    start_smtp: StartSmtp,
) -> None:
    env = await start_smtp(max_connection_rate_per_peer="3/m")  # one every 20 s
    clock = _fake_clock(env)
    for _ in range(3):
        assert (await _greeting(env, PEER)).startswith("220 ")
    assert await _greeting(env, PEER) == _over_rate(PEER, "3/m")
    clock.advance(19.9)
    assert await _greeting(env, PEER) == _over_rate(PEER, "3/m")
    clock.advance(0.1)  # 20 s after the burst: one more, not three
    assert (await _greeting(env, PEER)).startswith("220 ")
    assert await _greeting(env, PEER) == _over_rate(PEER, "3/m")
    clock.advance(60)  # a whole period away: the full burst again
    for _ in range(3):
        assert (await _greeting(env, PEER)).startswith("220 ")
    assert await _greeting(env, PEER) == _over_rate(PEER, "3/m")


async def test_max_burst_lowers_how_many_come_at_once(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_connection_rate_per_peer="60/m,max_burst=1")
    clock = _fake_clock(env)
    assert (await _greeting(env, PEER)).startswith("220 ")
    assert (await _greeting(env, PEER)).startswith("220 ")  # KumoMTA admits burst + 1
    assert await _greeting(env, PEER) == _over_rate(PEER, "60/m,max_burst=1")
    clock.advance(1)
    assert (await _greeting(env, PEER)).startswith("220 ")


async def test_a_peer_block_can_raise_the_rate(start_smtp: StartSmtp) -> None:
    env = await start_smtp(max_connection_rate_per_peer="1/h",
                           peer={f"{OTHER}/32": {"max_connection_rate_per_peer": "5/h"}})
    assert (await _greeting(env, PEER)).startswith("220 ")
    assert await _greeting(env, PEER) == _over_rate(PEER, "1/h")
    for _ in range(5):
        assert (await _greeting(env, OTHER)).startswith("220 ")
    assert await _greeting(env, OTHER) == _over_rate(OTHER, "5/h")


async def test_the_rate_counts_the_client_a_proxy_header_names(start_smtp: StartSmtp) -> None:
    # Behind a proxy every connection comes from the proxy: the client is the header's.
    env = await start_smtp(max_connection_rate_per_peer="1/h",
                           peer={PEER: {"require_proxy_protocol": True}})

    async def through_proxy(client_ip: str) -> str:
        client = await RawSmtpClient.connect(env.port, source=PEER)
        try:
            client.writer.write(
                f"PROXY TCP4 {client_ip} 192.0.2.9 40000 25\r\n".encode("ascii"))
            return str(await client.read_reply())
        finally:
            await client.close()

    assert (await through_proxy("198.51.100.1")).startswith("220 ")
    assert await through_proxy("198.51.100.1") == _over_rate("198.51.100.1", "1/h")
    assert (await through_proxy("198.51.100.2")).startswith("220 ")


# ---------------------------------------------------------------------- the options


@pytest.mark.parametrize("value", ["lots", "0/s", "10/0s", "10/fortnight", "1 per second",
                                   100, True])
def test_a_malformed_rate_is_refused_naming_the_option(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"'max_connection_rate_per_peer'.*invalid throttle"):
        EsmtpListenerConfig.from_options({"max_connection_rate_per_peer": value})


def test_a_malformed_rate_in_a_peer_block_is_refused_naming_the_block() -> None:
    with pytest.raises(ConfigError,
                       match=r'peer\["10.0.0.0/8"\].max_connection_rate_per_peer'):
        EsmtpListenerConfig.from_options(
            {"peer": {"10.0.0.0/8": {"max_connection_rate_per_peer": "fast"}}})


def test_the_rate_is_read_as_a_throttle_spec_and_written_back_as_one() -> None:
    config = EsmtpListenerConfig.from_options({"max_connection_rate_per_peer": "100/min"})
    assert config.max_connection_rate_per_peer == ThrottleSpec(100, 60)
    assert config.to_dict()["max_connection_rate_per_peer"] == "100/m"
    again = EsmtpListenerConfig.from_options({"max_connection_rate_per_peer": "100/m"})
    assert again == config


async def test_a_lua_policy_with_a_malformed_rate_fails_to_load(tmp_path: Path) -> None:
    import kumocore_lua_policy as lua_policy  # a built-in plugin: always installed
    from kumocore_lua_policy.errors import LuaPolicyError

    policy = tmp_path / "policy.lua"
    policy.write_text("""
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.start_esmtp_listener { listen = '127.0.0.1:0', max_connection_rate_per_peer = '5/fortnight' }
end)
""")
    # The policy's init fails at the call, naming the option and the value.
    with pytest.raises(LuaPolicyError, match=re.escape(
            "'max_connection_rate_per_peer' in kumo.start_esmtp_listener: "
            "invalid throttle spec '5/fortnight'")):
        reception = await make_reception(
            policy_file=str(policy), plugins=(("lua_policy", lua_policy.LuaPolicyPlugin()),))
        await reception.close()


async def test_a_lua_policy_sets_the_rate(tmp_path: Path) -> None:
    policy = tmp_path / "policy.lua"
    policy.write_text("""
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.start_esmtp_listener {
    listen = '127.0.0.1:0', hostname = 'lua.example', max_connection_rate_per_peer = '2/h',
  }
end)
""")
    async with lua_policy_listener(policy) as (listener, _):
        replies = []
        for _ in range(3):
            client = await RawSmtpClient.connect(listener.address[1], source=PEER)
            replies.append(str(await client.read_reply()))
            await client.close()
    assert [reply[:3] for reply in replies] == ["220", "220", "421"]
    assert replies[2] == ("421 4.7.0 lua.example too many connections from 127.0.0.5 "
                          "(max_connection_rate_per_peer 2/h). Try later")


# ---------------------------------------------------------------------- the state


def test_the_tracked_clients_stay_within_the_cap_when_many_addresses_connect() -> None:
    clock = FakeClock()
    rates = ConnectionRates(clock=clock)
    spec = ThrottleSpec.parse("2/h")  # nothing refills during the test
    assert rates.admit("192.0.2.1", spec) and rates.admit("192.0.2.1", spec)
    assert not rates.admit("192.0.2.1", spec)
    # Twice the cap of other addresses, the flooding one refused in between: it stays
    # tracked (refused last, it is the newest), and so stays refused.
    for i in range(2 * MAX_TRACKED_PEERS):
        assert rates.admit(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", spec)
        if i % 1000 == 0:
            assert not rates.admit("192.0.2.1", spec)
        assert len(rates) <= MAX_TRACKED_PEERS
    assert len(rates) == MAX_TRACKED_PEERS
    assert not rates.admit("192.0.2.1", spec)
    # The least recently seen were forgotten: they start again with a full bucket.
    assert rates.admit("10.0.0.0", spec)


def test_an_ipv6_slash_64_is_one_client() -> None:
    rates = ConnectionRates(clock=FakeClock())
    spec = ThrottleSpec.parse("2/h")
    assert rates.admit("2001:db8:1:2::1", spec)
    assert rates.admit("2001:db8:1:2:ffff::9", spec)
    assert not rates.admit("2001:db8:1:2::77", spec)  # the same /64
    assert rates.admit("2001:db8:1:3::1", spec)  # the next /64
    assert len(rates) == 2


def test_clients_whose_bucket_refilled_are_forgotten_as_others_connect() -> None:
    clock = FakeClock()
    rates = ConnectionRates(clock=clock)
    spec = ThrottleSpec.parse("10/s")
    for i in range(100):
        assert rates.admit(f"192.0.2.{i}", spec)
    clock.advance(1)  # every bucket is full again: the same as an unknown client
    for i in range(60):
        assert rates.admit(f"198.51.100.{i}", spec)
    assert len(rates) == 60
