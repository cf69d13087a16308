"""KumoMTA's ``redis_operation_latency`` for a policy's ``redis.open`` handle, on a real
node's ``/metrics``: each ``conn:query`` is one ``query`` operation, ``ok`` or
``error`` (the server's error reply), under the handle's service label."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.common.redis_server import RedisServer
from kumocore.testing.plugin import MakeNode
from tests.support.metric_samples import samples, series


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


POLICY = """
local kumo = require 'kumo'
local redis = require 'redis'
kumo.on('smtp_server_message_received', function(msg)
  local conn = redis.open { node = '{url}' }
  conn:query('INCR', 'received')
  local ok = pcall(function() return conn:query('NO-SUCH-COMMAND') end)
  msg:set_meta('bad_query_failed', not ok)
end)
"""


async def test_each_query_is_timed_by_status_under_the_handles_service(
    redis_server: RedisServer, make_node: MakeNode,
) -> None:
    node = await make_node(POLICY.replace("{url}", redis_server.url))
    assert await node.send() == {}
    await node.wait_for("Delivery")
    values = samples((await node.admin("GET", "/metrics"))[1])
    port = f"127.0.0.1:{redis_server.port}/"
    # Keyed by label values in name order: operation, service, status.
    mine = {(operation, status): value for (operation, service, status), value in
            series(values, "redis_operation_latency_count").items() if port in service}
    assert mine == {("query", "ok"): 1, ("query", "error"): 1}
