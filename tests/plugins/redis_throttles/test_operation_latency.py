"""KumoMTA's ``redis_operation_latency`` for the shared throttle store, against a real
redis-server: each command by KumoMTA's operation (``ping``, ``query``, ``script``) and
status, under a service label shaped as KumoMTA's; and on a real node's ``/metrics``.

The histograms are per process and each test's Redis has its own port, hence its own
service label: a test reads only its own series."""

from __future__ import annotations

import re

from kumocore_redis_throttles import RedisOptions, RedisThrottleStore

from bench.common.redis_server import RedisServer
from kumocore.node.redis_latency import REDIS_LATENCY
from kumocore.testing.plugin import MakeNode
from kumocore.throttle import ThrottleSpec
from tests.support.metric_samples import samples, series


def counts(service: str) -> dict[tuple[str, str], int]:
    """(operation, status) → observations, for one service."""
    return {(operation, status): histogram.count
            for (name, operation, status), histogram in REDIS_LATENCY.items()
            if name == service}


async def test_connecting_pings_then_throttles_and_leases_run_scripts(
    store: RedisThrottleStore,
) -> None:
    service = store.service
    # connect(): PING, COMMAND INFO (answered), three SCRIPT LOADs.
    assert counts(service) == {("ping", "ok"): 1, ("query", "ok"): 4}
    await store.throttle("k", ThrottleSpec.parse("10/m"))
    lease = await store.acquire_lease("c", 2, 30)
    assert lease is not None
    await store.renew_lease(lease, 30)
    await store.release_lease(lease)  # ZREM: a plain command
    assert counts(service) == {("ping", "ok"): 1, ("query", "ok"): 5, ("script", "ok"): 3}


async def test_a_command_to_a_dead_redis_is_an_error_and_an_outage_sends_no_more(
    store: RedisThrottleStore, redis_server: RedisServer,
) -> None:
    spec = ThrottleSpec.parse("10/m")
    redis_server.kill()
    for _ in range(5):  # answered locally; Redis is probed once per probe_interval
        await store.throttle("k", spec)
    assert store.degraded
    assert counts(store.service)[("script", "error")] == 1
    assert ("script", "ok") not in counts(store.service)


def test_the_service_is_named_as_kumomta_names_it_without_the_password() -> None:
    options = RedisOptions.from_table({"node": "redis://:hunter2@127.0.0.1:6379/0"})
    assert re.fullmatch(r"redis://:\*\*\*@127\.0\.0\.1:6379/0-[0-9a-f]{8}", options.service)
    other = RedisOptions.from_table({"node": "redis://:hunter2@127.0.0.1:6379/0",
                                     "pool_size": 3})
    # Other settings for the same node: another suffix, as KumoMTA's checksum gives.
    assert other.service != options.service
    assert other.service.rpartition("-")[0] == options.service.rpartition("-")[0]


POLICY = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.configure_redis_throttles { node = '{url}' }
end)
kumo.on('smtp_server_message_received', function(msg)
  kumo.make_throttle('latency-test', '100/s'):throttle()
end)
"""


async def test_a_nodes_metrics_show_its_throttle_scripts(
    redis_server: RedisServer, make_node: MakeNode,  # the node stops before its Redis
) -> None:
    node = await make_node(POLICY.replace("{url}", redis_server.url))
    assert await node.send(recipients=["a@example.com", "b@example.com"]) == {}
    await node.wait_for("Delivery", count=2)
    values = samples((await node.admin("GET", "/metrics"))[1])
    service = RedisOptions.from_table({"node": redis_server.url}).service
    # Keyed by label values in name order: operation, service, status.
    mine = {(operation, status): value for (operation, name, status), value in
            series(values, "redis_operation_latency_count").items() if name == service}
    assert mine[("ping", "ok")] == 1
    assert mine[("script", "ok")] >= 1  # the policy's GCRA, and the connections' leases
    assert ("script", "error") not in mine
