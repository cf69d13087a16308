"""KumoMTA's queue, spool and bounce latencies on ``/metrics`` of a real node:
``queue_resolve_latency`` (a queue name resolved before each insert),
``ready_queue_insert_latency`` (a due message put in its ready queue),
``message_data_load_latency`` (a body read back from the spool) and
``bounce_classify_latency`` (only when a classifier answers). A message relayed at once
is in tests/admin/test_latency_metrics.py."""

from __future__ import annotations

import asyncio

from kumocore.testing.plugin import MakeNode
from tests.support.metric_samples import Samples, scrape


def _count(values: Samples, name: str) -> float:
    return values.get((f"{name}_count", ()), 0.0)


async def test_a_retried_message_reloads_its_body_and_enters_its_ready_queue_again(
    make_node: MakeNode,
) -> None:
    node = await make_node(spool="rocksdb")
    assert await node.send(recipients="tempfail-once@example.com") == {}
    await node.wait_for("TransientFailure")
    services = node.runtime.services
    assert services is not None
    [message] = services.queues.messages.values()
    async with asyncio.timeout(5):
        while message.data:  # released once deferred: the body is on disk only
            await asyncio.sleep(0.01)
    status, answer = await node.admin("POST", "/api/admin/rebind/v1", {
        "domain": "example.com", "reason": "retry now", "data": {}, "always_flush": True})
    assert (status, answer) == (200, {"moved": 0, "flushed": 1})
    await node.wait_for("Delivery")
    values = await scrape(node)
    assert _count(values, "message_data_load_latency") == 1
    assert values[("message_data_load_latency_sum", ())] > 0
    # Resolved once, at reception (flushed in place: its queue did not change); each
    # attempt is put in the ready queue.
    assert _count(values, "queue_resolve_latency") == 1
    assert _count(values, "ready_queue_insert_latency") == 2


CLASSIFYING = """
local kumo = require 'kumo'
kumo.on('init', function()
  kumo.configure_bounce_classifier { files = { kumo.bounce_classifier_default_rules() } }
end)
"""


async def test_bounces_are_classified_and_timed_once_a_classifier_is_configured(
    make_node: MakeNode,
) -> None:
    node = await make_node(CLASSIFYING)
    assert await node.send(recipients="permfail@example.com") == {}
    [bounce] = await node.wait_for("Bounce")
    assert bounce["bounce_classification"] == "InvalidRecipient"
    values = await scrape(node)
    assert _count(values, "bounce_classify_latency") == 1
    assert values[("bounce_classify_latency_bucket", (("le", "0.005"),))] == 1


async def test_without_a_classifier_no_classification_is_timed(make_node: MakeNode) -> None:
    node = await make_node()
    assert await node.send(recipients="permfail@example.com") == {}
    [bounce] = await node.wait_for("Bounce")
    assert bounce["bounce_classification"] == "Uncategorized"
    values = await scrape(node)
    assert _count(values, "bounce_classify_latency") == 0
    assert ("bounce_classify_latency_bucket", (("le", "+Inf"),)) in values  # exported
