"""A node's workers suspend an egress source each for itself: on the node's ``/metrics``
the suspension gauge reads 1 (the highest of the workers), while the counters add up."""

from __future__ import annotations

import json

from aiohttp import web

from kumocore.admin.merge import merge_metrics_json, merge_metrics_text
from kumocore.admin.peers import PeerAnswer

GAUGE = 'egress_source_health_suspended{reason="Unplumbed",source="bad"}'
COUNTER = 'egress_source_health_suspensions_total{reason="Unplumbed",source="bad"}'


def _text(gauge: str, count: str) -> bytes:
    return (f"# HELP egress_source_health_suspended x\n# TYPE egress_source_health_suspended "
            f"gauge\n{GAUGE} {gauge}\n# HELP egress_source_health_suspensions_total x\n"
            f"# TYPE egress_source_health_suspensions_total counter\n{COUNTER} {count}\n"
            ).encode()  # fmt: skip


def test_two_workers_that_suspended_a_source_show_one_suspension_and_two_transitions() -> None:
    local = web.Response(body=_text("1.0", "1.0"))
    merged = merge_metrics_text(local, [PeerAnswer(1, 200, _text("1.0", "1.0"))]).body
    assert isinstance(merged, bytes)
    assert f"{GAUGE} 1.0\n".encode() in merged
    assert f"{COUNTER} 2.0\n".encode() in merged


def test_the_json_gauge_is_the_highest_of_the_workers() -> None:
    def answer(value: int) -> dict[str, object]:
        series = {"reason": {"Unplumbed": {"source": {"bad": value}}}}
        return {"egress_source_health_suspended": {"type": "gauge", "help": "", "value": series}}

    local = web.json_response(answer(1))
    merged = merge_metrics_json(
        local,
        [
            PeerAnswer(1, 200, json.dumps(answer(1)).encode()),
            PeerAnswer(2, 200, json.dumps(answer(0)).encode()),
        ],
    )
    assert isinstance(merged.body, bytes)
    value = json.loads(merged.body)["egress_source_health_suspended"]["value"]
    assert value == {"reason": {"Unplumbed": {"source": {"bad": 1}}}}
