"""How the answers of a node's workers combine into one (see :mod:`kumocore.admin.fanout`).

Each function takes this worker's own response and the other workers' answers and
returns the node's response. Answers that are not 200 (a worker that was unreachable,
or that does not hold the message asked about) are left out of sums.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from kumocore.admin.metrics import CONTENT_TYPE, go_float
from kumocore.admin.peers import PeerAnswer

#: Samples combined by min/max instead of summed (the rest are counts: summed).
_MIN_SAMPLES = {"process_start_time_seconds"}
#: (An auto-suspended source reads 1 however many workers suspended it; every worker
#: measures the same machine's CPU usage, so the system_cpu_usage_* gauges are not added.)
_MAX_SAMPLES = {"kumocore_build_info", "process_max_fds", "egress_source_health_suspended",
                "system_cpu_usage_sum", "system_cpu_usage_normalized"}


def _bodies(local: web.Response, answers: list[PeerAnswer]) -> list[bytes]:
    own = [local.body] if local.status == 200 and isinstance(local.body, bytes) else []
    return own + [a.body for a in answers if a.status == 200]


def _json_bodies(local: web.Response, answers: list[PeerAnswer]) -> list[Any]:
    return [json.loads(body) for body in _bodies(local, answers)]


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
    summaries = _json_bodies(local, answers)
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
    totals["scheduled_queues"], totals["ready_queues"] = len(scheduled), len(ready)
    return web.json_response({"scheduled": scheduled, "ready": ready, "totals": totals})


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


def merge_metrics_json(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    merged: dict[str, Any] = {}
    for metrics in _json_bodies(local, answers):
        for name, entry in metrics.items():
            seen = merged.get(name)
            if seen is None:
                merged[name] = entry
            else:
                seen["value"] = _combine(name, seen["value"], entry["value"])
    return web.json_response(merged)


def _combine(name: str, first: Any, second: Any) -> Any:
    if isinstance(first, dict) and isinstance(second, dict):
        out = dict(first)
        for key, value in second.items():
            out[key] = _combine(name, out[key], value) if key in out else value
        return out
    if isinstance(first, int | float) and isinstance(second, int | float):
        if name in _MIN_SAMPLES:
            return min(first, second)
        if name in _MAX_SAMPLES:
            return max(first, second)
        return first + second
    return first


def merge_metrics_text(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    """Sum the workers' Prometheus text, sample by sample (name and label text).

    Every worker renders the same families in the same format (kumocore.admin.metrics), so the
    text is merged as text: HELP/TYPE lines once per family, each sample's value combined.
    Label text is kept verbatim (already escaped), which also keeps the names exact —
    prometheus_client's parser would rename counter samples.
    """
    headers: dict[str, list[str]] = {}  # family -> its HELP/TYPE lines
    samples: dict[str, dict[str, float]] = {}  # family -> "name{labels}" -> value
    for body in _bodies(local, answers):
        family = ""
        for line in body.decode("utf-8").splitlines():
            if line.startswith("# "):
                parts = line.split(" ", 3)
                family = parts[2] if len(parts) > 2 else family
                lines = headers.setdefault(family, [])
                if line not in lines:
                    lines.append(line)
                continue
            series, _, value = line.rpartition(" ")
            if not series:
                continue
            values = samples.setdefault(family, {})
            name = series.partition("{")[0]
            number = float(value)
            values[series] = _combine(name, values[series], number) if series in values \
                else number  # fmt: skip
    out: list[str] = []
    for family, lines in headers.items():
        out += [line + "\n" for line in lines]
        out += [f"{series} {go_float(value)}\n"
                for series, value in samples.get(family, {}).items()]  # fmt: skip
    return web.Response(body="".join(out).encode("utf-8"),
                        headers={"Content-Type": CONTENT_TYPE})  # fmt: skip


def merge_status(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    """The status page's data (:mod:`kumocore.status.data`) for the whole node."""
    return web.json_response(merge_statuses(_json_bodies(local, answers)))


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
        counters = _combine("counters", counters, status["counters"]) if counters \
            else dict(status["counters"])  # fmt: skip
    merged["counters"] = counters
    queues = [s["queues"] for s in statuses if s.get("queues") is not None]
    if queues:
        merged["queues"] = _merged_summary(queues)
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


def _merged_summary(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The queue summaries merged exactly as ``merge_summary`` merges them."""
    local = web.json_response(summaries[0])
    answers = [PeerAnswer(k, 200, json.dumps(s).encode()) for k, s in enumerate(summaries[1:])]
    return json.loads(merge_summary(local, answers).body)  # type: ignore[arg-type, no-any-return]


def _keep_scheduled_facts(entries: list[dict[str, Any]], queues: list[dict[str, Any]]) -> None:
    """A queue is as old as its oldest message on any worker, suspended if on any."""
    for entry in entries:
        ages, until = [], []
        for summary in queues:
            for other in summary["scheduled"]:
                if other["name"] == entry["name"]:
                    ages.append(other.get("oldest_age"))
                    until.append(other.get("suspended_until"))
        entry["oldest_age"] = max((a for a in ages if a is not None), default=None)
        entry["suspended_until"] = max((u for u in until if u is not None), default=None)


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
