"""``smtp_server_get_dynamic_parameters``: a Lua policy computes the listener parameters
of each connection, and the client sees them (greeting, EHLO, relaying, limits); nil
keeps the listener's; a failing or wrong answer refuses the connection with a 421."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bench.common.smtp_client import RawSmtpClient
from kumocore import hookimpl
from kumocore.config import EsmtpListenerConfig
from kumocore.config.listeners import dynamic_overrides
from kumocore.config.unsupported import ALLOW_UNSUPPORTED_ENV
from kumocore.errors import ConfigError
from kumocore.policy.hooks import Hooks
from kumocore.reception.smtp.server import EsmtpListener
from kumocore.trace.bus import SERVER_TRACE, Subscriber
from tests.reception.harness import HOSTNAME, Reception, lua_policy_listener
from tests.smtp.conftest import StartSmtp

# Each client address (127.0.0.x, all loopback) gets another answer from the handler.
POLICY = """
local kumo = require 'kumo'

kumo.on('init', function()
  kumo.start_esmtp_listener {
    listen = '127.0.0.1:0',
    hostname = 'static.example',
    relay_hosts = { '127.0.0.1' },
    meta = { static_meta = 'kept', handler_meta = 'static' },
    peer = { ['127.0.0.0/8'] = { allow_xclient = true } },
  }
end)

local ANSWERS = {
  ['127.0.0.5'] = function(listener, conn_meta)
    conn_meta:set_meta('handler_meta', 'set by the handler')
    return {
      meta = { dyn_listener = listener },
      via = { ['127.0.0.1'] = { hostname = 'virtual.example', banner = 'dynamic banner',
                                relay_hosts = { '127.0.0.5' }, max_message_size = 5000 } },
    }
  end,
  ['127.0.0.6'] = function() return nil end,
  ['127.0.0.7'] = function() error('dynamic parameters are broken') end,
  ['127.0.0.8'] = function() return { listen = '0.0.0.0:2025' } end,
  ['127.0.0.9'] = function() return { max_message_size = 'lots' } end,
  ['127.0.0.10'] = function() return { hostnme = 'typo.example' } end,
  ['127.0.0.11'] = function() kumo.reject(550, '5.7.1 no service on this address') end,
  ['127.0.0.12'] = function() kumo.sleep(5) end,
  ['127.0.0.13'] = function()
    return { via = { ['10.9.9.9'] = { hostname = 'xclient.example' } } }
  end,
  ['127.0.0.14'] = function() return { peer = { ['127.0.0.14/32'] = { max_connections = 1 } } } end,
}

kumo.on('smtp_server_get_dynamic_parameters', function(listener, conn_meta)
  local ip = conn_meta:get_meta('received_from'):match('^(.*):%d+$')
  local answer = ANSWERS[ip]
  if answer then return answer(listener, conn_meta) end
end)

kumo.on('smtp_server_connection_accepted', function(conn_meta)
  conn_meta:set_meta('hostname_at_accept', conn_meta:get_meta('hostname'))
end)
"""


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[tuple[EsmtpListener, Reception]]:
    path = tmp_path / "policy.lua"
    path.write_text(POLICY)
    async with lua_policy_listener(path) as started:
        yield started


async def connect(listener: EsmtpListener, source: str) -> RawSmtpClient:
    return await RawSmtpClient.connect(listener.address[1], source=source)


async def test_answer_sets_hostname_banner_relaying_and_size_the_client_sees(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    smtp, reception = listener
    client = await connect(smtp, "127.0.0.5")
    assert str(await client.read_reply()) == "220 virtual.example dynamic banner"
    ehlo = await client.command("EHLO client.test")
    assert ehlo.lines[0] == "virtual.example Aloha client.test"
    assert "SIZE 5000" in ehlo.lines
    # relay_hosts now names this (otherwise untrusted) client: it may relay anywhere.
    rcpts, final = await client.send_mail("a@example.com", ["b@elsewhere.example"], "S: x\r\n\r\n")
    assert [r.code for r in rcpts] == [250]
    assert final.code == 250
    [message] = reception.messages
    assert message.meta["dyn_listener"] == f"127.0.0.1:{smtp.address[1]}"
    assert message.meta["static_meta"] == "kept"  # meta tables merge
    # What the handler set in the connection meta itself is not reset to the listener's.
    assert message.meta["handler_meta"] == "set by the handler"
    # The event runs before smtp_server_connection_accepted, which sees its hostname.
    assert message.meta["hostname_at_accept"] == "virtual.example"
    await client.close()


async def test_nil_keeps_the_listeners_own_parameters(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    smtp, _ = listener
    client = await connect(smtp, "127.0.0.6")
    assert str(await client.read_reply()) == "220 static.example kumocore ESMTP"
    ehlo = await client.command("EHLO client.test")
    assert f"SIZE {smtp.config.max_message_size}" in ehlo.lines
    # Not a relay host: refused for a domain the listener does not accept.
    await client.command("MAIL FROM:<a@example.com>")
    assert (await client.command("RCPT TO:<b@elsewhere.example>")).code == 550
    await client.close()


@pytest.mark.parametrize(
    ("source", "logged"),
    [
        ("127.0.0.7", "dynamic parameters are broken"),
        ("127.0.0.8", "'listen' cannot be changed per connection"),
        ("127.0.0.9", "invalid value for 'max_message_size' in smtp_server_get_dynamic_parameters"),
        (
            "127.0.0.10",
            "unknown key 'hostnme' for smtp_server_get_dynamic_parameters "
            "(did you mean 'hostname'?)",
        ),
    ],
)
async def test_failing_or_bad_answer_refuses_with_421_and_logs_the_reason(
    listener: tuple[EsmtpListener, Reception], source: str, logged: str
) -> None:
    smtp, _ = listener
    with capture_logs() as logs:
        client = await connect(smtp, source)
        assert str(await client.read_reply()) == "421 4.3.0 static.example technical difficulties"
        assert await client.closed()
    [entry] = [e for e in logs if e["event"].startswith("smtp_server_get_dynamic_parameters")]
    assert logged in entry["error"]
    assert entry["log_level"] == "error"
    # The listener is unharmed: the next client is served.
    other = await connect(smtp, "127.0.0.6")
    assert (await other.read_reply()).code == 220
    await other.close()


async def test_a_rejection_refuses_the_connection_with_its_reply(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    smtp, _ = listener
    client = await connect(smtp, "127.0.0.11")
    assert str(await client.read_reply()) == "550 5.7.1 no service on this address"
    assert await client.closed()


async def test_a_handler_slower_than_the_hook_timeout_is_cut_short(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    smtp, reception = listener
    reception.runtime.hooks.caller.timeout = 0.3  # the handler sleeps 5 s
    started = time.monotonic()
    client = await connect(smtp, "127.0.0.12")
    assert str(await client.read_reply()) == "421 4.3.0 static.example technical difficulties"
    assert time.monotonic() - started < 3
    assert await client.closed()


async def test_xclient_asks_again_for_the_new_addresses(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    smtp, _ = listener
    client = await connect(smtp, "127.0.0.13")
    assert str(await client.read_reply()) == "220 static.example kumocore ESMTP"
    await client.command("EHLO client.test")
    reply = await client.command("XCLIENT DESTADDR=10.9.9.9")
    assert str(reply) == "220 xclient.example kumocore ESMTP"
    # Now speaking for 127.0.0.11, whose answer is a refusal: it ends the session.
    reply = await client.command("XCLIENT ADDR=127.0.0.11")
    assert str(reply) == "550 5.7.1 no service on this address"
    assert await client.closed()


async def test_listener_wide_option_in_a_peer_block_of_the_answer_is_refused(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    smtp, _ = listener
    with capture_logs() as logs:
        client = await connect(smtp, "127.0.0.14")
        assert (await client.read_reply()).code == 421
    [entry] = [e for e in logs if e["event"].startswith("smtp_server_get_dynamic_parameters")]
    assert "unknown key 'peer[\"127.0.0.14/32\"].max_connections'" in entry["error"]
    await client.close()


async def test_the_event_is_traced_as_a_callback_with_its_answer(
    listener: tuple[EsmtpListener, Reception],
) -> None:
    smtp, _ = listener
    subscriber = SERVER_TRACE.subscribe(Subscriber(lambda meta: True))
    try:
        client = await connect(smtp, "127.0.0.5")
        await client.read_reply()
        await client.close()
        await asyncio.sleep(0.05)
    finally:
        SERVER_TRACE.unsubscribe(subscriber)
    callbacks = [e.value for e in subscriber.queue if e.kind == "Callback"]
    assert [c["name"] for c in callbacks] == [
        "smtp_server_get_dynamic_parameters",
        "smtp_server_connection_accepted",
    ]
    assert callbacks[0]["result"]["via"]["127.0.0.1"]["hostname"] == "virtual.example"
    assert callbacks[0]["error"] is None


class PythonPolicy:
    """A Python policy implementing the hook: overrides per client address."""

    @hookimpl
    def kumo_smtp_server_get_dynamic_parameters(
        self, listener: str, conn_meta: dict[str, Any]
    ) -> dict[str, Any] | None:
        if conn_meta["received_from"].startswith("127.0.0.5:"):
            return {"banner": "python banner", "max_recipients_per_message": 1}
        return None


async def test_a_python_policy_answers_the_same_hook(start_smtp: StartSmtp) -> None:
    env = await start_smtp(PythonPolicy(), relay_hosts=["127.0.0.0/8"])
    client = await env.client("127.0.0.5")
    assert str(await client.read_reply()) == f"220 {HOSTNAME} python banner"
    await client.command("EHLO client.test")
    rcpts, _ = await client.send_mail("a@example.com", ["b@x.example", "c@x.example"], "S\r\n\r\n")
    assert [r.code for r in rcpts] == [250, 452]
    other = await env.client("127.0.0.6")
    assert str(await other.read_reply()) == f"220 {HOSTNAME} kumocore ESMTP"


async def test_without_an_implementation_the_event_is_never_asked(
    start_smtp: StartSmtp, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def asked(*args: Any) -> None:
        raise AssertionError("smtp_server_get_dynamic_parameters asked without a handler")

    monkeypatch.setattr(Hooks, "smtp_server_get_dynamic_parameters", asked)
    env = await start_smtp()
    client = await env.client("127.0.0.5")
    assert (await client.read_reply()).code == 220
    assert (await client.command("EHLO client.test")).code == 250


def test_answer_applies_over_the_static_blocks_then_its_own_peer_and_via() -> None:
    config = EsmtpListenerConfig.from_options(
        {
            "hostname": "static.example",
            "meta": {"a": 1},
            "via": {"10.0.0.0/8": {"hostname": "static-via.example", "banner": "static via"}},
        }
    )
    connection = config.for_connection("192.0.2.1", "10.0.0.1")
    assert connection.hostname == "static-via.example"
    answer = dynamic_overrides(
        {
            "hostname": "dynamic.example",
            "meta": {"b": 2},
            "peer": {"192.0.2.0/24": {"meta": {"c": 3}}, "192.0.2.1": {"client_timeout": "5s"}},
            "via": {"10.0.0.1": {"banner": "dynamic via"}, "10.0.0.2": {"banner": "other"}},
        }
    )
    result = connection.with_overrides(answer, "192.0.2.1", "10.0.0.1")
    # As KumoMTA: the answer's own options beat the listener's via block, and its most
    # specific matching peer block, then its via block, beat those.
    assert result.hostname == "dynamic.example"
    assert result.banner == "dynamic via"
    assert result.client_timeout == 5.0
    assert result.meta == {"a": 1, "b": 2}  # the /24 peer block lost to the /32 one
    assert connection.with_overrides(dynamic_overrides({}), "192.0.2.1", "10.0.0.1") is connection


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"tls_required_client_ca": "/ca.pem"}, "'tls_required_client_ca' .* not supported"),
        ({"max_connections": 5}, "'max_connections' cannot be changed per connection"),
        ({"via": {"not-a-cidr": {}}}, "expected a CIDR block as key"),
        ({"via": {"10.0.0.1": {"hostname": 7}}}, "'via\\[\"10.0.0.1\"\\].hostname'"),
    ],
)
def test_answers_kumocore_cannot_honour_are_refused_naming_the_field(
    answer: dict[str, Any], error: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOW_UNSUPPORTED_ENV, raising=False)
    with pytest.raises(ConfigError, match=error):
        dynamic_overrides(answer)


def test_unsupported_options_at_their_defaults_are_accepted() -> None:
    answer = dynamic_overrides({"deferred_spool": False, "batch_handling": "BifurcateAlways"})
    assert answer.options == {"deferred_spool": False, "batch_handling": "BifurcateAlways"}
