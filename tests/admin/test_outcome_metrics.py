"""Delivery outcome counters on ``/metrics`` of a real node, labelled as KumoMTA labels
them (``service``: the protocol, and the path), beside kumocore's node-wide totals."""

from __future__ import annotations

from kumocore.testing.plugin import MakeNode
from tests.support.metric_samples import SINK_PATH_SERVICE, scrape_after_delivering, series


async def test_deliveries_count_per_protocol_and_per_path_and_in_the_node_total(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    values = await scrape_after_delivering(node, ["a@example.com", "b@example.com"])
    path = SINK_PATH_SERVICE
    assert series(values, "total_messages_delivered") == {("smtp_client",): 2, (path,): 2}
    assert series(values, "total_messages_transfail") == {}
    assert values[("kumocore_messages_delivered", ())] == 2
    assert values[("kumocore_messages_transfail", ())] == 0
