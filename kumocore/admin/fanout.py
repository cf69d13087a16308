"""Admin requests answered for the whole node: ask every worker, merge what they say.

With ``serve --workers N`` the kernel hands an admin request to any one worker. This
middleware (on the public HTTP listener only) lets that worker answer it, asks the
others the same question over their private sockets (:mod:`kumocore.admin.peers`), and
merges the answers, so ``kumocore queue summary``, ``/metrics`` and the rest describe the
node, and a suspension or bounce made through any worker applies on all of them:

* queue summary: queues with the same name are one queue, their counts summed;
* bounce/suspend lists: one entry per rule id (ids are node-wide), bounce counts summed;
* creating a rule: the receiving worker assigns the id, the others adopt it;
* cancelling a rule: done if any worker had it (404 only if none did);
* inspect: the answer of the worker that holds the message;
* the status page's data (``/api/admin/status/v1``): see ``merge_statuses``;
* spool compaction: every worker compacts its own shard; the first failure answers;
* ``/metrics`` and ``/metrics.json``: counters and gauges summed across workers (process
  start time: the earliest; build info and limits: the largest).

A worker that does not answer (restarting) is left out; the ``X-Kumocore-Workers``
response header says how many answered ("1/2").
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from kumocore.admin.inspect_ready_q import merge_inspect_ready_q
from kumocore.admin.merge import (
    merge_counts,
    merge_first_success,
    merge_inspect,
    merge_local,
    merge_rule_lists,
    merge_rules_created,
    merge_sched_q,
    merge_status,
    merge_summary,
)
from kumocore.admin.merge_metrics import merge_metrics_json_steps, merge_metrics_text_steps
from kumocore.admin.peers import ANSWERED_HEADER, RULE_ID_HEADER, NodePeers, PeerAnswer, answered
from kumocore.admin.ready_q_states import merge_states
from kumocore.admin.spool_compact import merge_compactions
from kumocore.node.stepwise import Steps, run_stepwise
from kumocore.xfer.admin import merge_cancel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Merge = Callable[[web.Response, list[PeerAnswer]], web.Response]
StepwiseMerge = Callable[[web.Response, list[PeerAnswer]], Steps[web.Response]]

#: (method, path) of the admin requests answered for the whole node, and how.
FANNED_OUT: dict[tuple[str, str], Merge] = {
    ("GET", "/api/admin/queue-summary/v1"): merge_summary,
    ("GET", "/api/admin/bounce/v1"): merge_rule_lists,
    ("GET", "/api/admin/suspend/v1"): merge_rule_lists,
    ("POST", "/api/admin/bounce/v1"): merge_rules_created,
    ("POST", "/api/admin/suspend/v1"): merge_rules_created,
    ("DELETE", "/api/admin/bounce/v1"): merge_first_success,
    ("DELETE", "/api/admin/suspend/v1"): merge_first_success,
    ("GET", "/api/admin/inspect-message/v1"): merge_inspect,
    ("POST", "/api/admin/rebind/v1"): merge_counts,
    ("GET", "/api/admin/inspect-sched-q/v1"): merge_sched_q,
    ("GET", "/api/admin/status/v1"): merge_status,
    ("POST", "/api/admin/suspend-ready-q/v1"): merge_rules_created,
    ("GET", "/api/admin/suspend-ready-q/v1"): merge_rule_lists,
    ("DELETE", "/api/admin/suspend-ready-q/v1"): merge_first_success,
    ("POST", "/api/admin/bump-config-epoch"): merge_local,
    ("GET", "/api/admin/ready-q-states/v1"): merge_states,
    ("GET", "/api/admin/inspect-ready-q/v1"): merge_inspect_ready_q,
    ("POST", "/api/admin/set_diagnostic_log_filter/v1"): merge_local,
    ("POST", "/api/admin/abort-ready-q-conn/v1"): merge_first_success,
    ("POST", "/api/admin/xfer/v1"): merge_counts,  # each worker moves its own messages
    ("POST", "/api/admin/xfer/cancel/v1"): merge_cancel,
    ("POST", "/api/admin/spool-compact/v1"): merge_compactions,  # each worker's shard
}


#: Requests answered for the whole node whose merge is long work (a megabyte of text per
#: worker): run a slice at a time, so the loop keeps serving SMTP clients.
STEPWISE: dict[tuple[str, str], StepwiseMerge] = {
    ("GET", "/metrics"): merge_metrics_text_steps,
    ("GET", "/metrics.json"): merge_metrics_json_steps,
}

#: POSTs whose target lives in one worker: its 404 means "not here", so the others are asked.
SEARCHED_PATHS = ("/api/admin/abort-ready-q-conn/v1", "/api/admin/xfer/cancel/v1")

#: POSTs that create a rule whose id must be the same on every worker.
RULE_PATHS = ("/api/admin/bounce/v1", "/api/admin/suspend/v1", "/api/admin/suspend-ready-q/v1")


async def _merged(key: tuple[str, str], local: web.Response,
                  answers: list[PeerAnswer]) -> web.Response:  # fmt: skip
    stepwise = STEPWISE.get(key)
    if stepwise is not None:
        return await run_stepwise(stepwise(local, answers))
    return FANNED_OUT[key](local, answers)


def make_fanout_middleware(peers: NodePeers) -> Any:
    """The middleware described in the module docstring, for this worker's ``peers``."""

    @web.middleware
    async def fanout(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = (request.method, request.path)
        if key not in FANNED_OUT and key not in STEPWISE:
            return await handler(request)
        body = await request.read()  # cached by aiohttp: the local handler reads it again
        local = await handler(request)
        if not isinstance(local, web.Response):
            return local
        if request.method == "POST" and local.status >= 400 and not (
                local.status == 404 and request.path in SEARCHED_PATHS):
            return local  # an invalid request is refused once, not N times
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        if request.method == "POST" and request.path in RULE_PATHS:
            headers[RULE_ID_HEADER] = json.loads(local.body)["id"]  # type: ignore[arg-type]
        answers = await peers.ask_others(request.method, request.path_qs, body, headers)
        merged = await _merged(key, local, answers)
        merged.headers[ANSWERED_HEADER] = answered(local.status < 500, answers)
        return merged

    return fanout
