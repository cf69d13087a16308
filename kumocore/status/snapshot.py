"""One worker's status as JSON (``GET /api/admin/status/v1``), and the node's.

Everything here is read from what already exists: the outcome and reception counters
behind ``/metrics.json``, the queue summary (:mod:`kumocore.admin.summary`), the admin
rules, the recent responses (:mod:`kumocore.status.responses`), the log sinks' stats and
the spool's file system. With ``serve --workers N`` :func:`node_status` asks the other
workers the same question and merges the answers (:func:`kumocore.admin.merge.merge_status`),
exactly as the fanned-out admin endpoint does.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kumocore import __version__
from kumocore.admin.summary import queue_summary
from kumocore.metrics import reception_counter
from kumocore.queue_name import parse_queue_name
from kumocore.status.responses import log_for

if TYPE_CHECKING:
    from kumocore.queue.admin import QueueRule
    from kumocore.queue.manager import QueueManager
    from kumocore.runtime import Runtime

__all__ = ["STATUS_PATH", "local_status", "node_status", "process_start_time"]

STATUS_PATH = "/api/admin/status/v1"
#: The outcome counters shown, by their ``/metrics`` names.
COUNTERS = {"delivered": "delivered", "transfail": "transient", "fail": "bounced",
            "expired": "expired", "admin_bounced": "admin_bounced"}  # fmt: skip


def process_start_time() -> float:
    """When this process started (Unix time), from ``/proc``; now if that cannot be read."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rpartition(")")[2].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))  # fmt: skip
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


_IMPORTED = time.time()
_STARTED = process_start_time()


def _manager(runtime: Runtime) -> QueueManager | None:
    """The runtime's queue manager; None before the queues start (or when a test stands
    something else in for them)."""
    from kumocore.queue.manager import QueueManager

    queues = runtime.queues
    return queues if isinstance(queues, QueueManager) else None


def _counters(runtime: Runtime) -> dict[str, Any]:
    manager = _manager(runtime)
    outcomes: dict[str, int] = manager.outcomes.counters if manager is not None else {}
    received = dict(reception_counter(runtime).counts)
    counters: dict[str, Any] = {name: outcomes.get(key, 0) for name, key in COUNTERS.items()}
    counters["received"] = sum(received.values())
    counters["received_by_listener"] = received
    return counters


def _rule(rule: QueueRule, now: float) -> dict[str, Any]:
    entry = rule.to_json()
    entry["queue_names"] = list(rule.queue_names)
    entry["expires"] = rule.expires
    entry["remaining"] = max(rule.expires - now, 0.0)
    return entry


def _queues(manager: QueueManager, now: float) -> dict[str, Any]:
    summary = queue_summary(manager)
    admin = manager.admin
    for entry in summary["scheduled"]:
        name = entry["name"]
        parts = parse_queue_name(name)
        entry.update(domain=parts.domain, tenant=parts.tenant, campaign=parts.campaign,
                     routing_domain=parts.routing_domain)  # fmt: skip
        entry["suspended_until"] = admin.suspended_until(name)
        created = [m.created for i in manager.scheduled[name].ids
                   if (m := manager.messages.get(i)) is not None]  # fmt: skip
        entry["oldest_age"] = now - min(created) if created else None
    return summary


def _disk(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    try:
        stat = os.statvfs(path)
    except OSError:
        return {"path": path, "free_bytes": None, "total_bytes": None}
    return {"path": path, "free_bytes": stat.f_bavail * stat.f_frsize,
            "total_bytes": stat.f_blocks * stat.f_frsize}  # fmt: skip


def _spools(runtime: Runtime) -> list[dict[str, Any]]:
    store = runtime.store
    if store is None:
        return []
    out = []
    for role, spool in (("data", store.data), ("meta", store.meta)):
        path = getattr(spool, "path", None) or getattr(spool, "root", None)
        disk = _disk(str(path) if path else None) or {"path": None}
        out.append({"role": role, "name": getattr(spool, "name", role), **disk})
    return out


def local_status(runtime: Runtime) -> dict[str, Any]:
    """This process's status (what the private socket of a worker answers)."""
    now = time.time()
    manager = _manager(runtime)
    logs = runtime.logs
    status: dict[str, Any] = {
        "time": now,
        "workers": 1,
        "counters": _counters(runtime),
        "queues": _queues(manager, now) if manager is not None else None,
        "suspensions": [_rule(r, now) for r in manager.admin.list_suspensions()]
        if manager is not None else [],
        "bounces": [_rule(r, now) for r in manager.admin.list_bounces()]
        if manager is not None else [],
        "recent": log_for(runtime).recent(),
        "node": {
            "hostname": runtime.hostname,
            "nodeid": runtime.nodeid,
            "version": __version__,
            "started": _STARTED,
            "uptime": now - _STARTED,
            "policy_path": runtime.policy_path,
            "spools": _spools(runtime),
            "log_sinks": logs.stats() if logs is not None else {},
        },
    }
    return status


async def node_status(runtime: Runtime) -> dict[str, Any]:
    """The whole node's status: this worker's, merged with the other workers' answers."""
    local = local_status(runtime)
    node = runtime.node
    if node is None:
        return local
    from kumocore.admin.merge import merge_statuses

    answers = await node.ask_others("GET", STATUS_PATH, b"", {})
    return merge_statuses([local, *(json.loads(a.body) for a in answers if a.status == 200)])
