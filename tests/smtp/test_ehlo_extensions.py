"""smtp_server_ehlo gets the extensions EHLO will advertise as its third argument, and a
handler that returns a list replaces them (KumoMTA's documented X-SOMETHING example)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kumocore_lua_policy as lua_policy  # a built-in plugin: always installed

from bench.common.smtp_client import RawSmtpClient
from kumocore import hookimpl
from kumocore.reception.smtp.server import start_esmtp_listener
from tests.reception.harness import make_reception

LISTENER = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.start_esmtp_listener { listen = '127.0.0.1:0', hostname = 'ext.example' }
end)
"""


async def _ehlo_lines(policy: str | None, python_policy: object | None = None) -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.lua"
        path.write_text(LISTENER + (policy or ""))
        plugins: tuple[tuple[str, object], ...] = (("lua_policy", lua_policy.LuaPolicyPlugin()),)
        if python_policy is not None:
            plugins += (("python_policy", python_policy),)
        reception = await make_reception(policy_file=str(path), plugins=plugins)
        [config] = reception.runtime.config.esmtp_listeners
        listener = await start_esmtp_listener(reception.runtime, config)
        try:
            client = await RawSmtpClient.connect(listener.address[1], source="127.0.0.5")
            await client.read_reply()
            reply = await client.command("EHLO client.example")
            assert reply.code == 250, reply
            helo = await client.command("HELO client.example")
            assert helo.code == 250, helo
            return list(reply.lines)
        finally:
            await listener.close()
            await reception.close()


async def test_lua_handler_appending_to_extensions_advertises_the_addition() -> None:
    lines = await _ehlo_lines("""
kumo.on('smtp_server_ehlo', function(domain, conn_meta, extensions)
  extensions[#extensions + 1] = 'X-SOMETHING'
  return extensions
end)
""")
    assert lines[0] == "ext.example Aloha client.example"
    assert "PIPELINING" in lines and "ENHANCEDSTATUSCODES" in lines
    assert lines[-1] == "X-SOMETHING"


async def test_lua_handler_with_table_insert_as_kumomta_documents_it() -> None:
    lines = await _ehlo_lines("""
kumo.on('smtp_server_ehlo', function(domain, conn_meta, extensions)
  table.insert(extensions, 'X-DOCUMENTED')
  return extensions
end)
""")
    assert lines[-1] == "X-DOCUMENTED"


async def test_lua_handler_returning_nil_keeps_the_standard_extensions() -> None:
    standard = await _ehlo_lines(None)
    lines = await _ehlo_lines("""
kumo.on('smtp_server_ehlo', function(domain, conn_meta, extensions)
  assert(#extensions >= 4, 'expected the standard extensions')
end)
""")
    assert lines == standard


async def test_lua_handler_can_remove_an_extension() -> None:
    lines = await _ehlo_lines("""
kumo.on('smtp_server_ehlo', function(domain, conn_meta, extensions)
  local kept = {}
  for _, ext in ipairs(extensions) do
    if ext ~= 'PIPELINING' then table.insert(kept, ext) end
  end
  return kept
end)
""")
    assert "PIPELINING" not in lines
    assert "8BITMIME" in lines


class _PythonExtensions:
    @hookimpl
    def kumo_smtp_server_ehlo(
        self, domain: str, conn_meta: dict[str, Any], extensions: list[str]
    ) -> list[str]:
        return [*extensions, f"X-PY-{domain.upper()}"]


async def test_python_handler_returning_a_list_replaces_the_extensions() -> None:
    lines = await _ehlo_lines(None, _PythonExtensions())
    assert lines[-1] == "X-PY-CLIENT.EXAMPLE"
