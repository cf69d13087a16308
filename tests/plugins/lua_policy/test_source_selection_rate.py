"""``source_selection_rate`` and ``additional_source_selection_rates`` from a Lua policy on
a running node: mail through the ESMTP listener to a recording sink over a pool of two
sources (``s1`` binds 127.0.10.1, ``s2`` 127.0.10.2), the same limits for a
``custom_lua`` queue (KumoMTA selects its source the same way), and the
``max_source_selection_rate`` ceiling of ``resolve-egress-path`` and ``inspect-ready-q``."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kumocore.testing.node import SINK_HOST, Node
from kumocore.testing.plugin import MakeNode
from kumocore.testing.smtp_sink import RecordingSink

RESOLVE = "/api/admin/resolve-egress-path/v1"
INSPECT = "/api/admin/inspect-ready-q/v1"

POLICY = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.define_egress_source { name = 's1', source_address = '127.0.10.1' }
  kumo.define_egress_source { name = 's2', source_address = '127.0.10.2' }
  kumo.define_egress_pool { name = 'p', entries = { { name = 's1' }, { name = 's2' } } }
end)
-- s1 is warming up: 2 selections an hour per site, and 'warm' across its sites.
local by_source = {
  s1 = {
    source_selection_rate = '2/h',
    additional_source_selection_rates = { warm = '100/d,max_burst=1' },
  },
}
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  if domain == 'hook.test' then
    return kumo.make_queue_config {
      egress_pool = 'p',
      protocol = { custom_lua = { constructor = 'make.hook' } },
    }
  end
  return kumo.make_queue_config { egress_pool = 'p' }
end)
kumo.on('make.hook', function(domain, tenant, campaign)
  local sender = {}
  function sender:send(msg) return 'taken' end
  return sender
end)
kumo.on('get_egress_path_config', function(domain, source, site)
  local options = { smtp_port = PORT, prohibited_hosts = {}, idle_timeout = '1s' }
  for key, value in pairs(by_source[source] or {}) do options[key] = value end
  return kumo.make_egress_path(options)
end)
"""


@pytest.fixture
async def sink() -> AsyncIterator[RecordingSink]:
    sink = await RecordingSink().start()
    yield sink
    await sink.stop()


@pytest.fixture
async def node(make_node: MakeNode, sink: RecordingSink) -> Node:
    return await make_node(POLICY.replace("PORT", str(sink.port)), sink=sink)


def sources_of(node: Node) -> collections.Counter[str]:
    return collections.Counter(r["egress_source"] for r in node.logs("Delivery"))


async def test_a_lua_policys_selection_rate_limits_the_warming_source(
    node: Node, sink: RecordingSink
) -> None:
    await node.send(recipients=[f"r{n}@dest.test" for n in range(6)])
    await node.wait_for("Delivery", count=6)
    assert sources_of(node) == {"s1": 2, "s2": 4}
    by_ip = collections.Counter(m.source_ip for m in sink.messages)
    assert by_ip == {"127.0.10.1": 2, "127.0.10.2": 4}


async def test_a_custom_lua_queue_selects_its_source_under_the_same_limits(node: Node) -> None:
    await node.send(recipients=[f"h{n}@hook.test" for n in range(6)])
    records = await node.wait_for("Delivery", count=6)
    assert {r["response"]["content"] for r in records} == {"taken"}
    assert sources_of(node) == {"s1": 2, "s2": 4}


async def test_resolve_and_inspect_show_the_lowest_selection_rate_as_the_ceiling(
    node: Node,
) -> None:
    status, answer = await node.admin("GET", f"{RESOLVE}?domain=dest.test&source=s1")
    assert status == 200, answer
    # 2/h (2/3600 per second) is lower than 'warm' (100/86400 per second).
    assert answer["constraints"]["max_source_selection_rate"] == {
        "value": 2 / 3600, "source": {"kind": "primary"}, "display": "2/h"}  # fmt: skip
    status, answer = await node.admin("GET", f"{RESOLVE}?domain=dest.test&source=s2")
    assert answer["constraints"]["max_source_selection_rate"] is None

    await node.send(recipients="one@dest.test")
    await node.wait_for("Delivery", count=1)
    name = f"s1->{SINK_HOST}@smtp_client"
    deadline = time.monotonic() + 5
    while (view := await node.admin("GET", f"{INSPECT}?queue_name={name}"))[0] != 200:
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.05)
    ceiling: dict[str, Any] = view[1]["constraints"]["max_source_selection_rate"]
    assert ceiling["display"] == "2/h" and ceiling["source"] == {"kind": "primary"}
