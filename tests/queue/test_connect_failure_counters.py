"""KumoMTA's ``bind_failures`` and ``proxy_connection_failures`` on a real node with a Lua
policy: the pool's one source either binds an address on no interface of this machine
or goes through a SOCKS5 proxy that does not listen. Each connection attempt (the sink's
one address) fails once and moves its own counter only."""

from __future__ import annotations

from bench.common.ports import free_port
from kumocore.testing.node import Node
from kumocore.testing.plugin import MakeNode
from kumocore.testing.smtp_sink import RecordingSink
from tests.queue.test_source_health_table import unplumbed_address
from tests.support.metric_samples import samples

POLICY = """
local kumo = require 'kumo'
kumo.on('get_egress_source', function(name)
  return kumo.make_egress_source { name = name, SOURCE }
end)
kumo.on('get_egress_pool', function(name)
  return kumo.make_egress_pool { name = name, entries = { { name = 'only' } } }
end)
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config { egress_pool = 'p', retry_interval = '1h' }
end)
kumo.on('get_egress_path_config', function(domain, source, site)
  return kumo.make_egress_path { smtp_port = PORT, prohibited_hosts = {} }
end)
"""


async def _counters_after_one_failure(
    make_node: MakeNode, sink: RecordingSink, source: str
) -> tuple[float, float]:
    node: Node = await make_node(
        POLICY.replace("PORT", str(sink.port)).replace("SOURCE", source), sink=sink)
    assert await node.send(recipients="r@dest.test") == {}
    await node.wait_for("TransientFailure")
    values = samples((await node.admin("GET", "/metrics"))[1])
    return values[("bind_failures", ())], values[("proxy_connection_failures", ())]


async def test_a_source_address_that_cannot_be_bound_counts_a_bind_failure(
    make_node: MakeNode, sink: RecordingSink
) -> None:
    source = f"source_address = '{unplumbed_address()}'"
    assert await _counters_after_one_failure(make_node, sink, source) == (1, 0)


async def test_a_socks5_proxy_that_does_not_listen_counts_a_proxy_connection_failure(
    make_node: MakeNode, sink: RecordingSink
) -> None:
    host = "127.0.0.53"
    source = (f"socks5_proxy_server = '{host}:{free_port(host)}', "
              "socks5_proxy_source_address = '127.0.10.53', socks5_proxy_bind_source = false")
    assert await _counters_after_one_failure(make_node, sink, source) == (0, 1)
