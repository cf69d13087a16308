"""Merging the answers of a node's workers into one admin answer."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from kumocore.admin.merge import (
    merge_first_success,
    merge_metrics_json,
    merge_metrics_text,
    merge_rule_lists,
    merge_summary,
)
from kumocore.admin.peers import PeerAnswer


def _local(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status)


def _peer(value: Any, status: int = 200) -> PeerAnswer:
    return PeerAnswer(1, status, json.dumps(value).encode())


def _json(response: web.Response) -> Any:
    assert isinstance(response.body, bytes)
    return json.loads(response.body)


def _summary(scheduled: list[tuple[str, int]], ready: list[tuple[str, int, int]]) -> Any:
    return {
        "scheduled": [{"name": n, "count": c, "egress_pool": "p"} for n, c in scheduled],
        "ready": [{"name": n, "source": "s", "site": n, "count": c, "connections": k,
                   "connection_limit": 4} for n, c, k in ready],
        "totals": {"messages": sum(c for _, c in scheduled) + sum(c for _, c, _ in ready),
                   "scheduled": 0, "ready": 0, "connections": 0,
                   "scheduled_queues": 0, "ready_queues": 0},
    }


def test_queues_with_the_same_name_are_one_queue_with_summed_counts() -> None:
    merged = _json(merge_summary(
        _local(_summary([("a.test", 2), ("b.test", 1)], [("s->x", 3, 1)])),
        [_peer(_summary([("a.test", 5)], [("s->x", 1, 2)]))]))
    assert merged["scheduled"] == [{"name": "a.test", "count": 7, "egress_pool": "p"},
                                   {"name": "b.test", "count": 1, "egress_pool": "p"}]
    assert merged["ready"][0]["count"] == 4 and merged["ready"][0]["connections"] == 3
    assert merged["totals"]["messages"] == 12
    assert merged["totals"]["scheduled_queues"] == 2


def test_an_unreachable_worker_is_left_out_not_counted() -> None:
    merged = _json(merge_summary(_local(_summary([("a.test", 2)], [])),
                                 [PeerAnswer(1, 0, b"")]))  # fmt: skip
    assert merged["totals"]["messages"] == 2


def test_rules_are_one_entry_per_id_with_bounce_counts_summed() -> None:
    rule = {"id": "r1", "domain": "a.test", "bounced": {"a.test": 2}, "total_bounced": 2}
    merged = _json(merge_rule_lists(_local([rule]), [_peer([{**rule, "bounced": {"a.test": 3}}])]))
    assert merged == [{"id": "r1", "domain": "a.test", "bounced": {"a.test": 5},
                       "total_bounced": 5}]  # fmt: skip


def test_a_cancel_succeeds_when_any_worker_had_the_rule() -> None:
    missing = _local({"error": "no rule"}, status=404)
    assert merge_first_success(missing, [_peer({"id": "r1"})]).status == 200
    assert merge_first_success(missing, [_peer({"error": "no"}, status=404)]).status == 404


def test_metrics_json_sums_counts_but_keeps_the_earliest_start_and_one_build_info() -> None:
    one = {"total_messages_delivered": {"type": "counter", "help": "", "value": 3},
           "process_start_time_seconds": {"type": "gauge", "help": "", "value": 100.0},
           "kumocore_build_info": {"type": "gauge", "help": "", "value": {"version": {"1": 1}}}}
    two = {**one, "total_messages_delivered": {"type": "counter", "help": "", "value": 4},
           "process_start_time_seconds": {"type": "gauge", "help": "", "value": 90.0}}
    merged = _json(merge_metrics_json(_local(one), [_peer(two)]))
    assert merged["total_messages_delivered"]["value"] == 7
    assert merged["process_start_time_seconds"]["value"] == 90.0
    assert merged["kumocore_build_info"]["value"] == {"version": {"1": 1}}


def test_metrics_text_is_summed_per_series_keeping_names_and_label_text() -> None:
    text = ('# HELP total_messages_received Messages.\n# TYPE total_messages_received counter\n'
            'total_messages_received{service="esmtp_listener"} {n}\n'
            'total_messages_received{service="http_listener"} 1.0\n')
    local = web.Response(body=text.replace("{n}", "2.0").encode())
    peer = PeerAnswer(1, 200, text.replace("{n}", "5.0").encode())
    merged = merge_metrics_text(local, [peer]).body
    assert merged == (b'# HELP total_messages_received Messages.\n'
                      b'# TYPE total_messages_received counter\n'
                      b'total_messages_received{service="esmtp_listener"} 7.0\n'
                      b'total_messages_received{service="http_listener"} 2.0\n')
