"""smtp_server_rewrite_response: the policy's last word on each reply (KumoMTA's documented
DATA example, a 421 that closes, handler errors that change nothing), Lua and Python."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import kumocore_lua_policy as lua_policy  # a built-in plugin: always installed

from bench.common.smtp_client import RawSmtpClient
from kumocore import hookimpl
from kumocore.reception.smtp.server import start_esmtp_listener
from tests.reception.harness import Reception, make_reception

LISTENER = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.start_esmtp_listener {
    listen = '127.0.0.1:0', hostname = 'rw.example',
    domains = { ['inbound.example'] = { relay_to = true } },
  }
end)
"""

LUA_REWRITE = """
kumo.on('smtp_server_rewrite_response', function(status, response, command, conn_meta)
  if command == 'DATA' and status == 250 then
    return 250, 'well received!\\n' .. response
  end
  if command == 'MAIL' and status == 250 then
    return nil, 'sender noted'
  end
  if command == 'NOOP' then
    error('a bug in the rewrite handler')
  end
  if command == 'RSET' then
    return 421, '4.7.0 bye now'
  end
end)
"""


@asynccontextmanager
async def _session(tmp_path: Path, policy: str,
                   plugins: tuple[tuple[str, object], ...] = ()) -> AsyncIterator[
                       tuple[RawSmtpClient, Reception]]:
    path = tmp_path / "policy.lua"
    path.write_text(LISTENER + policy)
    reception = await make_reception(
        policy_file=str(path),
        plugins=(("lua_policy", lua_policy.LuaPolicyPlugin()), *plugins))
    [config] = reception.runtime.config.esmtp_listeners
    listener = await start_esmtp_listener(reception.runtime, config)
    try:
        client = await RawSmtpClient.connect(listener.address[1], source="127.0.0.5")
        await client.read_reply()
        yield client, reception
    finally:
        await listener.close()
        await reception.close()


async def test_lua_rewrites_the_data_reply_as_kumomta_documents(tmp_path: Path) -> None:
    async with _session(tmp_path, LUA_REWRITE) as (client, reception):
        assert (await client.command("EHLO c.example")).code == 250
        assert str(await client.command("MAIL FROM:<a@example.com>")) == "250 sender noted"
        assert (await client.command("RCPT TO:<b@inbound.example>")).code == 250
        assert (await client.command("DATA")).code == 354
        await client.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        final = await client.read_reply()
        assert final.code == 250
        assert final.lines[0] == "well received!"
        assert final.lines[1].startswith("OK ids=")
        assert len(reception.messages) == 1


async def test_lua_handler_error_leaves_the_reply_and_421_closes(tmp_path: Path) -> None:
    async with _session(tmp_path, LUA_REWRITE) as (client, _):
        await client.command("EHLO c.example")
        assert (await client.command("NOOP")).code == 250
        assert str(await client.command("RSET")) == "421 4.7.0 bye now"
        assert await client.closed()


class PythonRewrite:
    def __init__(self) -> None:
        self.seen: list[tuple[int, str | None]] = []

    @hookimpl
    def kumo_smtp_server_rewrite_response(
        self, status: int, response: str, command: str | None, conn_meta: dict[str, Any]
    ) -> tuple[int | None, str | None] | None:
        self.seen.append((status, command))
        if status == 500:
            return 550, "5.7.1 refused (rewritten)"
        return None


async def test_python_rewrite_and_the_command_names(tmp_path: Path) -> None:
    policy = PythonRewrite()
    async with _session(tmp_path, "", (("py", policy),)) as (client, _):
        await client.command("EHLO c.example")
        # Only the 500 (unknown command) is rewritten by this handler.
        assert str(await client.command("RCPT TO:<x@y>")) == \
            "503 5.5.0 MAIL FROM must be issued first"
        assert str(await client.command("BOGUS")) == "550 5.7.1 refused (rewritten)"
    # The greeting goes through it too, with no command (nil in Lua).
    assert policy.seen[:4] == [(220, None), (250, "EHLO"), (503, "RCPT"), (500, "BOGUS")]
