"""One worker's status as JSON: what ``GET /api/admin/status/v1`` answers.

Everything is read from what already exists: the outcome and reception counters behind
``/metrics.json``, the queue summary, the admin rules, the recent responses
(:mod:`kumocore.status.responses`), the log sinks' stats and the spool's file system.

The admin API passes in what it computed — the queue summary, the reception counts, the
version and the queue-name parser; the rest is read from the node's services
(``runtime.services``, None before the server starts).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["local_status", "process_start_time", "queue_manager"]

#: The outcome counters shown, by their ``/metrics`` names.
COUNTERS = {"delivered": "delivered", "transfail": "transient", "fail": "bounced",
            "expired": "expired", "admin_bounced": "admin_bounced"}  # fmt: skip


def process_start_time() -> float:
    """When this process started (Unix time), from ``/proc``; now if that cannot be read.

    ``/proc/self/stat`` gives the start in clock ticks since boot. It is turned into Unix
    time by way of the boot-time clock read now, not ``/proc/stat``'s ``btime``: that one
    has whole seconds only, and put the start up to a second off (even after the
    moment this module was imported)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rpartition(")")[2].split()[19])
        since_boot = ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)
    except (OSError, ValueError, IndexError, AttributeError):
        return _IMPORTED


_IMPORTED = time.time()
_STARTED = process_start_time()


def queue_manager(runtime: Any) -> Any:
    """The runtime's queue manager; None before the queues start (or when a test stands
    in something without outcome counters)."""
    queues = runtime.services.queues if runtime.services is not None else None
    return queues if hasattr(queues, "outcomes") and hasattr(queues, "admin") else None


def _counters(manager: Any, received: dict[str, int]) -> dict[str, Any]:
    outcomes: dict[str, int] = dict(manager.outcomes.counters) if manager is not None else {}
    counters: dict[str, Any] = {name: outcomes.get(key, 0) for name, key in COUNTERS.items()}
    counters["received"] = sum(received.values())
    counters["received_by_listener"] = dict(received)
    return counters


def _rule(rule: Any, now: float) -> dict[str, Any]:
    entry: dict[str, Any] = dict(rule.to_json())
    entry["queue_names"] = list(rule.queue_names)
    entry["expires"] = rule.expires
    entry["remaining"] = max(rule.expires - now, 0.0)
    return entry


def _queues(manager: Any, summary: dict[str, Any],
            parse_name: Callable[[str], Any]) -> dict[str, Any]:  # fmt: skip
    """The queue summary (which has each queue's oldest message age), each scheduled queue
    with its name's parts and its suspension."""
    # The rules' index finds a queue's suspensions without testing each (500 queues x
    # 2,000 suspensions tested one by one were a 3 s stall).
    suspended_until = manager.admin.suspended_until
    for entry in summary["scheduled"]:
        name = entry["name"]
        parts = parse_name(name)
        entry.update(domain=parts.domain, tenant=parts.tenant, campaign=parts.campaign,
                     routing_domain=parts.routing_domain)  # fmt: skip
        entry["suspended_until"] = suspended_until(name)
    return summary


def _automation(runtime: Any, now: float) -> list[dict[str, Any]]:
    engine = getattr(runtime, "tsa", None)
    if engine is None:
        return []
    return [action.to_json() for action in engine.actions.values() if action.expires > now]


def _disk(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    try:
        stat = os.statvfs(path)
    except OSError:
        return {"path": path, "free_bytes": None, "total_bytes": None}
    return {"path": path, "free_bytes": stat.f_bavail * stat.f_frsize,
            "total_bytes": stat.f_blocks * stat.f_frsize}  # fmt: skip


def _spools(runtime: Any) -> list[dict[str, Any]]:
    if runtime.services is None:
        return []
    store = runtime.services.store
    out = []
    for role, spool in (("data", store.data), ("meta", store.meta)):
        path = getattr(spool, "path", None) or getattr(spool, "root", None)
        disk = _disk(str(path) if path else None) or {"path": None}
        out.append({"role": role, "name": getattr(spool, "name", role), **disk})
    return out


def local_status(runtime: Any, *, summary: dict[str, Any] | None, received: dict[str, int],
                 version: str, parse_name: Callable[[str], Any]) -> dict[str, Any]:  # fmt: skip
    """This process's status. ``summary`` is its queue summary (None before the queues
    start), ``received`` its reception counts per listener, ``parse_name`` splits a
    scheduled-queue name (``kumocore.mail.queue_name.parse_queue_name``)."""
    now = time.time()
    manager = queue_manager(runtime)
    logs = runtime.services.logs if runtime.services is not None else None
    rules = manager.admin if manager is not None else None
    return {
        "time": now,
        "workers": 1,
        "counters": _counters(manager, received),
        "queues": _queues(manager, summary, parse_name)
        if manager is not None and summary is not None else None,
        "suspensions": [_rule(r, now) for r in rules.list_suspensions()] if rules else [],
        "bounces": [_rule(r, now) for r in rules.list_bounces()] if rules else [],
        # traffic shaping automation actions in force, as of its last sync (kumocore.tsa)
        "automation": _automation(runtime, now),
        "recent": manager.responses.recent() if manager is not None else [],
        "node": {
            "hostname": runtime.hostname,
            "nodeid": runtime.nodeid,
            "version": version,
            "started": _STARTED,
            "uptime": now - _STARTED,
            "policy_path": runtime.policy_path,
            "spools": _spools(runtime),
            "log_sinks": logs.stats() if logs is not None else {},
        },
    }
