"""How the answers of a node's workers combine into one (see :mod:`kumocore.admin.fanout`).

Each function takes this worker's own response and the other workers' answers and
returns the node's response (the metrics merges are in :mod:`kumocore.admin.merge_metrics`).
Answers that are not 200 (a worker that was unreachable, or that does not hold the message
asked about) are left out of sums.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import web

from kumocore.admin.json_answer import json_answer
from kumocore.admin.merge_metrics import (
    combine,
    merge_metrics_json,
    merge_metrics_text,
    ok_bodies,
)
from kumocore.admin.peers import PeerAnswer

__all__ = [
    "merge_counts",
    "merge_first_success",
    "merge_inspect",
    "merge_local",
    "merge_metrics_json",
    "merge_metrics_text",
    "merge_rule_lists",
    "merge_rules",
    "merge_rules_created",
    "merge_sched_q",
    "merge_status",
    "merge_statuses",
    "merge_summaries",
    "merge_summary",
]


def _json_bodies(local: web.Response, answers: list[PeerAnswer]) -> list[Any]:
    return [_loads(body) for body in ok_bodies(local, answers)]


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)  # several times json's speed on megabyte answers
    except ValueError:  # NaN, which json writes for a float meta value and orjson refuses
        return json.loads(body)


def _merge_entries(groups: Iterable[list[dict[str, Any]]], key: str,
                   summed: tuple[str, ...]) -> list[dict[str, Any]]:  # fmt: skip
    merged: dict[str, dict[str, Any]] = {}
    for entries in groups:
        for entry in entries:
            seen = merged.get(entry[key])
            if seen is None:
                merged[entry[key]] = dict(entry)
                continue
            for name in summed:
                seen[name] = seen.get(name, 0) + entry.get(name, 0)
    return list(merged.values())


def merge_summary(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    # orjson: a summary of 10,000 queues per worker is megabytes to read and write.
    return json_answer(merge_summaries(_json_bodies(local, answers)))


def merge_summaries(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Workers' queue summaries as one: a queue of the same name on several workers is
    one, its counts summed, as old as its oldest message anywhere. Each worker lists its
    busiest queues only (kumocore.admin.summary.MAX_LISTED); when one left some out, so
    does the node's answer, at the same length."""
    scheduled = _merge_entries((s["scheduled"] for s in summaries), "name", ("count",))
    by_name = {entry["name"]: entry for entry in scheduled}
    for summary in summaries:  # a queue's oldest message is the oldest on any worker
        for entry in summary["scheduled"]:
            if "oldest_age" not in entry:
                continue
            merged = by_name[entry["name"]]
            merged["oldest_age"] = max(merged.get("oldest_age", 0), entry.get("oldest_age", 0))
            if merged.get("site") is None:  # known on any worker that routed one
                merged["site"] = entry.get("site")
    summed = ("count", "connections", "delivered", "transient", "failed")
    ready = _merge_entries((s["ready"] for s in summaries), "name", summed)
    scheduled.sort(key=lambda e: (-e["count"], e["name"]))
    ready.sort(key=lambda e: (-e["count"], -e["connections"], e["name"]))
    totals: dict[str, int] = {}
    for summary in summaries:
        for name, value in summary["totals"].items():
            totals[name] = totals.get(name, 0) + value
    for kind, entries in (("scheduled", scheduled), ("ready", ready)):
        key = f"{kind}_queues"
        listed = [(len(s[kind]), s["totals"].get(key, 0)) for s in summaries]
        shortened = [shown for shown, total in listed if shown < total]
        if shortened:  # a count of the queues behind the lists is all there is
            del entries[max(shortened):]
            totals[key] = max(len(entries), *(total for _, total in listed))
        else:
            totals[key] = len(entries)
    return {"scheduled": scheduled, "ready": ready, "totals": totals}


def merge_rule_lists(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    return web.json_response(merge_rules(_json_bodies(local, answers)))


def merge_rules(lists: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Workers' bounce or suspension listings as one: a rule once, its bounce counts
    summed (each worker counts only the bounces it made)."""
    merged: dict[str, dict[str, Any]] = {}
    for rules in lists:
        for rule in rules:
            seen = merged.get(rule["id"])
            if seen is None:
                merged[rule["id"]] = dict(rule)
            elif "bounced" in rule:
                seen["bounced"] = _sum_maps(seen.get("bounced", {}), rule["bounced"])
                seen["total_bounced"] = sum(seen["bounced"].values())
    return list(merged.values())


def answered_json(answers: list[PeerAnswer]) -> list[Any]:
    """The JSON bodies of the other workers that answered 200."""
    return [json.loads(a.body) for a in answers if a.status == 200]


def _sum_maps(first: dict[str, int], second: dict[str, int]) -> dict[str, int]:
    out = dict(first)
    for key, value in second.items():
        out[key] = out.get(key, 0) + value
    return out


def merge_rules_created(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    results = _json_bodies(local, answers)
    merged = dict(results[0]) if results else {}
    if "bounced" in merged:
        for result in results[1:]:
            merged["bounced"] = _sum_maps(merged["bounced"], result.get("bounced", {}))
        merged["total_bounced"] = sum(merged["bounced"].values())
    return web.json_response(merged, status=local.status)


def merge_counts(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    """Answers that are objects of counts (``rebind``): summed key by key."""
    total: dict[str, int] = {}
    for counts in _json_bodies(local, answers):
        total = _sum_maps(total, counts)
    return web.json_response(total)


def merge_sched_q(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    """One scheduled queue spread over workers: every worker's messages, counts summed."""
    views = _json_bodies(local, answers)
    merged = dict(views[0]) if views else {}
    for view in views[1:]:
        merged["messages"] = merged["messages"] + view["messages"]
        for key in ("num_scheduled", "delayed_metric"):
            merged[key] = merged[key] + view[key]
        if not merged.get("queue_config"):
            merged["queue_config"] = view["queue_config"]
    return web.json_response(merged)


def merge_first_success(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    """The worker that had it answers for the node (a cancel by id, an abort of one
    connection): its answer as it came; the local failure (404) only if none had it."""
    if local.status == 200:
        return local
    for answer in answers:
        if answer.status == 200:
            return web.Response(body=answer.body, content_type=answer.content_type)
    return local


def merge_local(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    """Every worker applied the same change (a log filter, an epoch bump): the node's
    answer is this worker's (the ``X-Kumocore-Workers`` header says how many answered)."""
    return local


def merge_inspect(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    return merge_first_success(local, answers)  # the one worker that has the message answers


def merge_status(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    """The status page's data (:mod:`kumocore.status.data`) for the whole node."""
    return json_answer(merge_statuses(_json_bodies(local, answers)))


def merge_statuses(statuses: list[dict[str, Any]]) -> dict[str, Any]:
    """Counters and queue counts summed, rules once per id, recent responses summed by
    (kind, site, code, enhanced code, text); node facts from the first (asking) worker,
    log sink stats summed per sink."""
    if not statuses:
        return {}
    merged = dict(statuses[0])
    merged["workers"] = sum(s.get("workers", 1) for s in statuses)
    counters: dict[str, Any] = {}
    for status in statuses:
        counters = combine("counters", counters, status["counters"]) if counters \
            else dict(status["counters"])  # fmt: skip
    merged["counters"] = counters
    queues = [s["queues"] for s in statuses if s.get("queues") is not None]
    if queues:
        merged["queues"] = merge_summaries(queues)
        _keep_scheduled_facts(merged["queues"]["scheduled"], queues)
    for kind in ("suspensions", "bounces"):
        merged[kind] = _merge_entries((s[kind] for s in statuses), "id", ("total_bounced",))
    merged["automation"] = _merge_entries((s.get("automation", []) for s in statuses), "id", ())
    merged["recent"] = _merged_recent([s["recent"] for s in statuses])
    node = dict(merged["node"])
    node["log_sinks"] = {}
    for status in statuses:
        for sink, stats in status["node"]["log_sinks"].items():
            node["log_sinks"][sink] = _sum_maps(node["log_sinks"].get(sink, {}), stats)
    merged["node"] = node
    return merged


def _keep_scheduled_facts(entries: list[dict[str, Any]], queues: list[dict[str, Any]]) -> None:
    """A queue is as old as its oldest message on any worker, suspended if on any."""
    ages: dict[str, list[Any]] = {}
    until: dict[str, list[Any]] = {}
    for summary in queues:  # once over every worker's entries (not once per queue)
        for other in summary["scheduled"]:
            ages.setdefault(other["name"], []).append(other.get("oldest_age"))
            until.setdefault(other["name"], []).append(other.get("suspended_until"))
    for entry in entries:
        name = entry["name"]
        entry["oldest_age"] = max((a for a in ages.get(name, ()) if a is not None),
                                  default=None)  # fmt: skip
        entry["suspended_until"] = max((u for u in until.get(name, ()) if u is not None),
                                       default=None)  # fmt: skip


def _merged_recent(recents: list[dict[str, Any]]) -> dict[str, Any]:
    counts: dict[tuple[Any, ...], int] = {}
    classes: dict[str, int] = {}
    for recent in recents:
        for r in recent["responses"]:
            key = (r["kind"], r["site"], r["code"], r["enhanced_code"], r["text"])
            counts[key] = counts.get(key, 0) + r["count"]
        classes = _sum_maps(classes, recent["bounce_classes"])
    keys = ("kind", "site", "code", "enhanced_code", "text")
    responses = [dict(zip(keys, key, strict=True), count=count)
                 for key, count in sorted(counts.items(), key=lambda kv: -kv[1])]  # fmt: skip
    return {"minutes": recents[0]["minutes"] if recents else 0, "responses": responses,
            "bounce_classes": dict(sorted(classes.items(), key=lambda kv: -kv[1]))}  # fmt: skip
