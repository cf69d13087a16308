"""When the connection meta's ``ehlo_domain`` changes, as KumoMTA's ESMTP server orders it:
after the ``smtp_server_ehlo`` event and after the EHLO/HELO reply is written, so both
the event and the rewrite of that reply see the name the client gave before (or none)."""

from __future__ import annotations

from pathlib import Path

from tests.smtp.test_rewrite_response import _session

SEEN = """
kumo.on('smtp_server_ehlo', function(domain, conn_meta, extensions)
  table.insert(extensions, 'X-EVENT-SAW ' .. tostring(conn_meta.ehlo_domain))
  return extensions
end)
kumo.on('smtp_server_rewrite_response', function(status, response, command, conn_meta)
  if command == 'EHLO' or command == 'HELO' or command == 'NOOP' then
    return nil, response .. '\\nX-REPLY-SAW ' .. tostring(conn_meta.ehlo_domain)
  end
end)
"""


async def test_ehlo_domain_is_set_after_the_event_and_after_the_reply(tmp_path: Path) -> None:
    async with _session(tmp_path, SEEN) as (client, _reception):
        first = await client.command("EHLO one.example")
        assert first.code == 250
        assert "X-EVENT-SAW nil" in first.lines and first.lines[-1] == "X-REPLY-SAW nil"
        noop = await client.command("NOOP")
        assert noop.lines[-1] == "X-REPLY-SAW one.example"
        second = await client.command("EHLO two.example")
        assert "X-EVENT-SAW one.example" in second.lines
        assert second.lines[-1] == "X-REPLY-SAW one.example"
        helo = await client.command("HELO three.example")
        assert helo.code == 250 and helo.lines[-1] == "X-REPLY-SAW two.example"
        assert (await client.command("NOOP")).lines[-1] == "X-REPLY-SAW three.example"
