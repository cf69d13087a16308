"""The docs' Lua egress-source examples for proxies load as written, and a
half-configured proxy is refused with the option's name (docs/proxies.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kumocore_lua_policy import LuaPolicyPlugin

from tests.reception.harness import make_reception

POLICY = """\
local kumo = require 'kumo'
kumo.on('get_egress_source', function(source_name)
  if source_name == 'ip-1' then
    return kumo.make_egress_source {
      name = 'ip-1',
      socks5_proxy_server = '10.0.5.10:1080',
      socks5_proxy_source_address = '10.0.0.1',
      socks5_proxy_username = 'kumo',
      socks5_proxy_password = { key_data = 'secret' },
      ehlo_domain = 'mta1.example.com',
    }
  end
  if source_name == 'ip-2' then
    return kumo.make_egress_source {
      name = 'ip-2',
      ha_proxy_server = '10.0.5.10:2526',
      ha_proxy_source_address = '10.0.0.2',
      ehlo_domain = 'mta2.example.com',
    }
  end
  return kumo.make_egress_source { name = source_name, ha_proxy_server = '10.0.5.10:2526' }
end)
"""


async def test_docs_proxy_sources_load_and_a_half_configured_one_is_refused(
    tmp_path: Path,
) -> None:
    from kumocore.delivery.proxy import route_for_source

    path = tmp_path / "policy.lua"
    path.write_text(POLICY)
    reception = await make_reception(
        policy_file=str(path), plugins=(("lua_policy", LuaPolicyPlugin()),))
    try:
        hooks = reception.runtime.hooks
        socks = route_for_source(await hooks.get_egress_source("ip-1"))
        assert (socks.protocol, socks.server, socks.source_ip, socks.username, socks.password) \
            == ("socks5", ("10.0.5.10", 1080), "10.0.0.1", "kumo", b"secret")
        ha = route_for_source(await hooks.get_egress_source("ip-2"))
        assert (ha.protocol, ha.server, ha.source_ip) == ("haproxy", ("10.0.5.10", 2526),
                                                          "10.0.0.2")
        with pytest.raises(Exception, match="ha_proxy_server needs ha_proxy_source_address"):
            await hooks.get_egress_source("ip-3")
    finally:
        await reception.close()
