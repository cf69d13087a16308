"""KumoMTA's scheduler, maintainer and event-start metrics on ``/metrics`` of a real node
with a Lua policy: ``total_qmaint_runs`` (the scheduler's passes),
``scheduled_queue_maintainer_count`` (0: no scheduled queue has a task of its own),
``lua_event_started`` (each event call that ran an implementation, by KumoMTA's event
name, as ``lua_event_latency_count`` counts the completed ones), and the help and type
each is announced with."""

from __future__ import annotations

from kumocore.testing.plugin import MakeNode
from tests.support.metric_samples import samples, series

POLICY = """
local kumo = require 'kumo'
kumo.on('smtp_server_message_received', function(msg)
  msg:set_meta('seen', true)
end)
"""


async def test_event_starts_scheduler_runs_and_maintainers_are_exported(
    make_node: MakeNode,
) -> None:
    node = await make_node(POLICY)
    for recipient in ("a@dest.test", "b@dest.test"):
        assert await node.send(recipients=recipient) == {}
    await node.wait_for("Delivery", count=2)
    text = (await node.admin("GET", "/metrics"))[1]
    values = samples(text)
    started = series(values, "lua_event_started")
    completed = series(values, "lua_event_latency_count")
    assert started[("smtp_server_message_received",)] == 2
    assert completed[("smtp_server_message_received",)] == 2
    assert set(completed) <= set(started)  # every timed call was counted as it started
    assert all(started[event] >= count for event, count in completed.items())
    assert not any(event.startswith("kumo_") for (event,) in started)
    assert values[("total_qmaint_runs", ())] >= 1
    assert values[("scheduled_queue_maintainer_count", ())] == 0
    for name, kind in [("lua_event_started", "counter"), ("total_qmaint_runs", "counter"),
                       ("total_readyq_runs", "counter"), ("ready_full", "counter"),
                       ("delayed_due_to_ready_queue_full", "counter"),
                       ("bind_failures", "counter"), ("proxy_connection_failures", "counter"),
                       ("scheduled_queue_maintainer_count", "gauge")]:  # fmt: skip
        assert f"# TYPE {name} {kind}\n" in text
        assert f"# HELP {name} " in text
