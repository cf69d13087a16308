"""``unspecified`` is KumoMTA's built-in egress pool and source: a policy whose
``get_egress_source`` / ``get_egress_pool`` refuse names they do not know (the shape of
KumoMTA's sending-IPs guide) still routes queues that name no pool: its handlers are never
asked about that name."""

from __future__ import annotations

from pathlib import Path

import pytest
from kumocore_lua_policy import LuaPolicyPlugin

from tests.reception.harness import make_reception

POLICY = """\
local kumo = require 'kumo'
kumo.on('get_egress_source', function(source_name)
  if source_name == 'ip-1' then
    return kumo.make_egress_source { name = 'ip-1', source_address = '127.0.10.1' }
  end
  error 'you need to do something for other source names'
end)
kumo.on('get_egress_pool', function(pool_name)
  if pool_name == 'pool-1' then
    return kumo.make_egress_pool { name = 'pool-1', entries = { { name = 'ip-1' } } }
  end
  error 'you need to do something for other pool names'
end)
"""


async def test_unspecified_pool_and_source_are_built_in_even_when_the_handlers_refuse_other_names(
    tmp_path: Path,
) -> None:
    path = tmp_path / "policy.lua"
    path.write_text(POLICY)
    plugin = LuaPolicyPlugin()
    reception = await make_reception(policy_file=str(path), plugins=(("lua_policy", plugin),))
    try:
        hooks = reception.runtime.hooks
        pool = await hooks.get_egress_pool("unspecified")
        assert pool is not None and [e.name for e in pool.entries] == ["unspecified"]
        source = await hooks.get_egress_source("unspecified")
        assert source is not None and source.source_address is None
        assert (await hooks.get_egress_pool("pool-1")) is not None
        with pytest.raises(Exception, match="other source names"):
            await hooks.get_egress_source("ip-2")
    finally:
        await reception.close()


async def test_defining_a_pool_or_source_named_unspecified_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.lua"
    path.write_text("local kumo = require 'kumo'\nkumo.on('init', function()\n"
                    "  kumo.define_egress_source { name = 'unspecified' }\nend)\n")
    with pytest.raises(Exception, match="'unspecified' is the built-in egress pool"):
        await make_reception(policy_file=str(path),
                             plugins=(("lua_policy", LuaPolicyPlugin()),))
