"""``constraints`` (KumoMTA's ``EffectiveConstraints``) in the answers of
``resolve-egress-path`` and ``inspect-ready-q`` on a running node, for paths with and
without limits. Every expected ceiling is worked out here by hand from the policy's
options, by KumoMTA's rules (crates/kumo-api-types/src/egress_path.rs)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kumocore.testing.node import SINK_HOST, Node
from kumocore.testing.plugin import MakeNode
from kumocore.testing.smtp_sink import RecordingSink

RESOLVE = "/api/admin/resolve-egress-path/v1"
INSPECT = "/api/admin/inspect-ready-q/v1"
PRIMARY = {"kind": "primary"}

#: One path configuration per egress source name; ``unspecified`` has no limits.
POLICY = """
local kumo = require 'kumo'
local by_source = {
  unspecified = {},
  layered = {
    connection_limit = 10,
    additional_connection_limits = { shared = 4, wide = 50 },
    max_message_rate = '1000/s',
    additional_message_rate_throttles = { hourly = '10000/h' },
    max_connection_rate = '10/s',
    max_deliveries_per_connection = 5,
  },
  cycling = {
    connection_limit = 'local:3',
    max_message_rate = '1000/s',
    max_connection_rate = '10/s',
    max_deliveries_per_connection = 10,
  },
  odd_periods = {
    max_message_rate = 'local:8/min,max_burst=2',
    max_connection_rate = '7/5m',
  },
}
-- A scheduled queue's own rate, for the domains named after it.
local queue_rates = { ['slow.test'] = '50/s', ['fast.test'] = '5000/s' }
kumo.on('get_queue_config', function(domain, tenant, campaign, routing_domain)
  return kumo.make_queue_config { max_message_rate = queue_rates[domain] }
end)
kumo.on('get_egress_path_config', function(domain, source, site)
  local options = { smtp_port = PORT, prohibited_hosts = {}, idle_timeout = '5s' }
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


async def resolved_constraints(node: Node, source: str,
                               domain: str = "dest.test") -> dict[str, Any]:  # fmt: skip
    status, answer = await node.admin("GET", f"{RESOLVE}?domain={domain}&source={source}")
    assert status == 200, answer
    constraints: dict[str, Any] = answer["constraints"]
    return constraints


async def test_a_path_without_limits_has_only_its_connection_limit_and_nulls(
    node: Node,
) -> None:
    # connection_limit defaults to 32; no rate is set, so every rate axis is unlimited
    # (null), and nothing was declared out of reach.
    assert await resolved_constraints(node, "unspecified") == {
        "max_concurrent_dispatchers": {"value": 32.0, "source": PRIMARY, "display": "32"},
        "max_message_rate": None,
        "max_message_rate_declared": None,
        "max_connection_rate": None,
        "max_source_selection_rate": None,
    }


async def test_the_tightest_term_of_each_axis_wins_and_names_itself(node: Node) -> None:
    # Concurrency: min(10, shared 4, wide 50) = 4, from 'shared'.
    # Message rate: min(1000/s = 1000, hourly 10000/h = 10000/3600 ≈ 2.78,
    #   5 deliveries per connection * 10 connections/s = 50) = the hourly throttle, so
    #   the declared 1000/s is out of reach. Connection rate: 10/s.
    assert await resolved_constraints(node, "layered") == {
        "max_concurrent_dispatchers": {"value": 4.0,
                                       "source": {"kind": "additional", "name": "shared"},
                                       "display": "4"},
        "max_message_rate": {"value": 10000 / 3600,
                             "source": {"kind": "additional", "name": "hourly"},
                             "display": "10000/h"},
        "max_message_rate_declared": "1000/s",
        "max_connection_rate": {"value": 10.0, "source": PRIMARY, "display": "10/s"},
        "max_source_selection_rate": None,
    }  # fmt: skip


async def test_reconnect_cycling_caps_the_message_rate_below_the_declared_one(
    node: Node,
) -> None:
    # 10 deliveries per connection * 10 connections/s = 100/s < the declared 1000/s.
    # A 'local:' limit counts as its number.
    constraints = await resolved_constraints(node, "cycling")
    assert constraints["max_message_rate"] == {
        "value": 100.0, "source": {"kind": "reconnect_cycling"},
        "display": "10 \N{MULTIPLICATION SIGN} 10/s = 100/s"}  # fmt: skip
    assert constraints["max_message_rate_declared"] == "1000/s"
    assert constraints["max_concurrent_dispatchers"] == {
        "value": 3.0,
        "source": PRIMARY,
        "display": "3",
    }


async def test_rates_keep_the_operators_units_and_the_declared_rate_that_binds_has_no_note(
    node: Node,
) -> None:
    # 8/min = 8/60 per second; 1024 (default) deliveries * 7 per 300 s = 7168 per 300 s,
    # far above it, so max_message_rate itself binds and nothing is declared unreachable.
    constraints = await resolved_constraints(node, "odd_periods")
    assert constraints["max_message_rate"] == {
        "value": 8 / 60,
        "source": PRIMARY,
        "display": "local:8/m,max_burst=2",
    }
    assert constraints["max_message_rate_declared"] is None
    assert constraints["max_connection_rate"] == {
        "value": 7 / 300,
        "source": PRIMARY,
        "display": "7/300s",
    }


async def test_a_tighter_scheduled_queue_rate_binds_the_resolved_message_rate(
    node: Node,
) -> None:
    # 'cycling' binds at 10 * 10/s = 100/s; the queue's 50/s is lower, so it wins, and the
    # path's declared 1000/s stays out of reach.
    constraints = await resolved_constraints(node, "cycling", "slow.test")
    assert constraints["max_message_rate"] == {
        "value": 50.0, "source": {"kind": "other", "name": "scheduled queue max_message_rate"},
        "display": "50/s"}  # fmt: skip
    assert constraints["max_message_rate_declared"] == "1000/s"
    # With no rate of its own, the path's message rate is the queue's; nothing declared.
    constraints = await resolved_constraints(node, "unspecified", "slow.test")
    assert constraints["max_message_rate"]["display"] == "50/s"
    assert constraints["max_message_rate_declared"] is None
    # 'odd_periods' binds at 8/min, far below the queue's 5000/s: unchanged.
    assert await resolved_constraints(
        node, "odd_periods", "fast.test"
    ) == await resolved_constraints(node, "odd_periods")


async def test_inspect_ready_q_reports_the_same_ceilings_for_its_live_path(
    node: Node,
    sink: RecordingSink,
) -> None:
    await node.send(recipients="one@dest.test")
    await sink.wait_for(1)
    name = f"unspecified->{SINK_HOST}@smtp_client"
    deadline = time.monotonic() + 5
    while (answer := await node.admin("GET", f"{INSPECT}?queue_name={name}"))[0] != 200:
        assert time.monotonic() < deadline, answer
        await asyncio.sleep(0.05)
    assert answer[1]["constraints"] == await resolved_constraints(node, "unspecified")
    assert answer[1]["constraints"]["max_concurrent_dispatchers"]["display"] == "32"


def _schema(path: str) -> dict[str, Any]:
    from kumocore.admin.openapi import admin_openapi_paths

    operation = admin_openapi_paths()[path]["get"]
    schema: dict[str, Any] = operation["responses"]["200"]["content"]["application/json"]["schema"]
    return schema


async def test_the_openapi_schemas_name_every_field_of_the_answers(
    node: Node,
    sink: RecordingSink,
) -> None:
    status, resolved = await node.admin("GET", f"{RESOLVE}?domain=dest.test&source=layered")
    assert status == 200
    schema = _schema(RESOLVE)["properties"]
    assert set(schema) == set(resolved)
    constraints = schema["constraints"]["properties"]
    assert set(constraints) == set(resolved["constraints"])
    assert set(constraints["max_message_rate"]["properties"]) == set(
        resolved["constraints"]["max_message_rate"]
    )

    await node.send(recipients="one@dest.test")
    await sink.wait_for(1)
    name = f"unspecified->{SINK_HOST}@smtp_client"
    status, view = await node.admin("GET", f"{INSPECT}?queue_name={name}")
    assert status == 200 and len(view["dispatchers"]) == 1  # idles for 5 s
    schema = _schema(INSPECT)["properties"]
    assert set(schema) - {"scheduled_queue_names"} == set(view)
    assert set(schema["dispatchers"]["items"]["properties"]) == set(view["dispatchers"][0])
    assert (
        view["dispatchers"][0]["phase"]
        in schema["dispatchers"]["items"]["properties"]["phase"]["enum"]
    )
