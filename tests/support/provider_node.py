"""A real node for the provider and queue views (``provider-summary``, ``queue-summary``
and the provider gauges): a Lua policy with one egress source and pool, a path that
names a provider (``big.test``: BigMail), a queue config that names one (``named.test``:
NamedQueue), and messages for ``later.test`` scheduled an hour ahead at reception."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from kumocore.testing.node import Node, start_node
from kumocore.testing.smtp_sink import RecordingSink

__all__ = ["POLICY", "policy_for", "settled_node"]

#: SINK_PORT and LATER are filled in by :func:`policy_for`.
POLICY = """
local kumo = require 'kumo'

kumo.on('init', function()
  kumo.define_egress_source { name = 'ip-1' }
  kumo.define_egress_pool { name = 'pool-1', entries = { { name = 'ip-1' } } }
end)

kumo.on('smtp_server_message_received', function(msg)
  if msg:recipient().domain == 'later.test' then
    msg:set_scheduling { first_attempt = 'LATER' }
  end
end)

kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  local options = { egress_pool = 'pool-1', retry_interval = '1h' }
  if domain == 'named.test' then
    options.provider_name = 'NamedQueue'
  end
  return kumo.make_queue_config(options)
end)

kumo.on('get_egress_path_config', function(domain, source, site)
  local options = { enable_tls = 'Disabled', smtp_port = SINK_PORT, prohibited_hosts = {} }
  if domain == 'big.test' then
    options.provider_name = 'BigMail'
  end
  return kumo.make_egress_path(options)
end)
"""


def policy_for(sink: RecordingSink, *, idle_timeout: bool = False) -> str:
    """The policy for ``sink``; ``idle_timeout``: connections close as soon as idle."""
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    policy = POLICY.replace("SINK_PORT", str(sink.port)).replace("LATER", later)
    if idle_timeout:
        policy = policy.replace("prohibited_hosts = {} }",
                                "prohibited_hosts = {}, idle_timeout = 0 }")  # fmt: skip
    return policy


@asynccontextmanager
async def settled_node() -> AsyncIterator[Node]:
    """A node (and its sink) where two messages were delivered to small.test, one got a 451
    from big.test (it waits an hour) and one for later.test is scheduled an hour ahead;
    entered once later.test's site is found and the idle connections closed (each
    destination has an MX of its own). Both are stopped on the way out."""
    sink = await RecordingSink().start()
    zones: dict[str, Any] = {name: {"MX": [(10, f"mx.{name}")]}
                             for name in ("later.test", "big.test", "small.test")}
    zones.update({f"mx.{name}": {"A": ["127.0.0.1"]} for name in list(zones)})
    node = await start_node(policy_for(sink, idle_timeout=True), sink=sink, zones=zones)
    try:
        for recipient in ("a@small.test", "b@small.test", "tempfail@big.test",
                          "x@later.test"):  # fmt: skip
            assert await node.send("s@src.test", recipient) == {}
        await node.wait_for("Delivery", count=2, timeout=20)
        await node.wait_for("TransientFailure", timeout=20)
        for _ in range(100):
            summary = (await node.admin("GET", "/api/admin/queue-summary/v1"))[1]
            sites = {e["name"]: e["site"] for e in summary["scheduled"]}
            if sites.get("later.test") and not summary["totals"]["connections"]:
                break
            await asyncio.sleep(0.05)
        yield node
    finally:
        await node.stop()
        await sink.stop()
