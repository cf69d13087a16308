"""Delivery outcome counters on ``/metrics`` of a real node, labelled as KumoMTA labels
them (``service``: the protocol, and the path), beside kumocore's node-wide totals; and
the bound on the per-path counts (KumoMTA prunes them too)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kumocore.queue import provider_counts
from kumocore.queue.egress import PathKey
from kumocore.queue.watchdog import service
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


def _paths(count: int) -> list[SimpleNamespace]:
    """``count`` egress paths from one source to distinct sites, none with a provider."""
    return [SimpleNamespace(key=PathKey("src", f"mx{n}.example"),
                            config=SimpleNamespace(provider_name=None)) for n in range(count)]


def test_per_path_counts_start_again_past_their_bound_and_protocol_totals_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(provider_counts, "MAX_PATHS", 3)
    counts = provider_counts.ProviderCounts()
    paths = _paths(5)
    for path in paths:
        counts.count("Delivery", path, "unspecified")  # type: ignore[arg-type]
    # A fourth path found three kept: they were forgotten; the fifth joined the fourth.
    kept = {service(path): 1 for path in paths[3:]}  # type: ignore[arg-type]
    assert counts.by_path["delivered"] == kept
    assert counts.by_protocol["delivered"] == {"smtp_client": 5}


def test_providers_past_their_bound_count_under_other_and_no_count_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(provider_counts, "MAX_PROVIDER_KEYS", 3)
    counts = provider_counts.ProviderCounts()
    paths = _paths(6)
    for path in paths + paths[:2]:  # the first two again: they keep their own counts
        counts.count("Delivery", path, "unspecified")  # type: ignore[arg-type]
    by_provider = counts.by_provider["delivered"]
    assert len(by_provider) == 4 and by_provider["other"] == 3
    assert sum(by_provider.values()) == 8
    by_source = counts.by_provider_and_source["delivered"]
    assert len(by_source) == 4 and by_source[("other", "other", "other")] == 3
    assert sum(by_source.values()) == 8
