"""Read-only views of the queues: queue summary, message inspection, their text form.

The admin API, the CLI and ``/metrics`` all show the same numbers, so they are computed
here once. Only the :class:`~kumocore.queue.manager.QueueManager`'s public attributes are
read (``scheduled``, ``ready``, ``queued``, ``messages``, ``scheduler``, ``connection_limit``);
nothing here changes queue state. The counts come from the manager, which keeps them as
messages come and go; only the oldest age walks a queue's messages.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kumocore.logs.timestamps import rfc3339
from kumocore.mail.address import recipient_json

if TYPE_CHECKING:
    from kumocore.mail.message import Message
    from kumocore.queue.manager import QueueManager
    from kumocore.spool.store import MessageStore

__all__ = [
    "format_age",
    "format_summary",
    "inspect_message",
    "queue_summary",
    "ready_entries",
    "scheduled_counts",
]


def scheduled_counts(manager: QueueManager) -> dict[str, int]:
    """Messages waiting in each scheduled queue (not yet due, retrying or suspended).

    A scheduled queue's ``ids`` also holds its messages that moved on to a ready queue or
    are being delivered; KumoMTA counts those under the ready queue, so only ids the
    scheduler still holds count here (``ScheduledQueue.waiting``, kept by the manager).
    """
    return {name: queue.waiting for name, queue in manager.scheduled.items()}


def ready_entries(manager: QueueManager) -> list[dict[str, Any]]:
    """One entry per ready queue (egress path), busiest first."""
    queues = sorted(manager.paths.values(), key=lambda r: (-len(r), -r.connections, r.key.name))
    return [
        {
            "name": ready.key.name,
            "source": ready.key.source,
            "site": ready.key.site,
            "count": len(ready),
            "connections": ready.connections,
            "connection_limit": ready.connection_limit,
            # kumocore additions: the path's message rate limit, what it saw since start,
            # and its last error.
            "max_message_rate": _rate_text(ready.config),
            **_path_stats(manager, ready.key.name),
        }
        for ready in queues
    ]


def _rate_text(config: Any) -> str | None:
    spec = getattr(config, "max_message_rate", None)
    return None if spec is None else f"{spec.limit}/{spec.period}s"


def _path_stats(manager: QueueManager, name: str) -> dict[str, Any]:
    stats = manager.outcomes.stats.paths.get(name)
    if stats is None:
        return {"delivered": 0, "transient": 0, "failed": 0, "last_error": None}
    return {"delivered": stats.delivered, "transient": stats.transient,
            "failed": stats.failed, "last_error": stats.last_error}  # fmt: skip


def _oldest_age(manager: QueueManager, name: str, now: float) -> float:
    """Seconds since scheduled queue ``name``'s oldest message was received.

    The one figure not kept as messages come and go (a removal would need a heap or a
    sorted index per queue): it walks the queue's ids, O(messages) per call."""
    queued, oldest = manager.queued, now
    for message_id in manager.scheduled[name].ids:
        record = queued.get(message_id)
        if record is not None and record.message.created < oldest:
            oldest = record.message.created
    return round(now - oldest, 1)


def queue_summary(manager: QueueManager) -> dict[str, Any]:
    """What ``GET /api/admin/queue-summary/v1`` returns and ``kumocore queue summary`` prints."""
    now = time.time()
    counts = scheduled_counts(manager)
    names = sorted(manager.scheduled, key=lambda name: (-counts[name], name))
    scheduled = [
        {"name": name, "count": counts[name], "egress_pool": manager.scheduled[name].pool_name,
         "oldest_age": _oldest_age(manager, name, now), "site": manager.scheduled[name].site}
        for name in names
    ]  # fmt: skip
    ready = ready_entries(manager)
    return {
        "scheduled": scheduled,
        "ready": ready,
        "totals": {
            # Every message this node owns, wherever it is (scheduled, ready, in flight).
            "messages": len(manager.queued),
            "scheduled": sum(counts.values()),
            "ready": sum(e["count"] for e in ready),
            "connections": sum(e["connections"] for e in ready),
            "scheduled_queues": len(scheduled),
            "ready_queues": len(ready),
        },
    }


async def inspect_message(
    manager: QueueManager, store: MessageStore | None, message_id: str, *, want_body: bool
) -> dict[str, Any] | None:
    """KumoMTA's ``InspectMessageV1Response`` for a queued message; None when unknown."""
    message: Message | None = manager.messages.get(message_id)
    if message is None:
        return None
    body: dict[str, Any] = {
        "sender": message.sender.email,
        "recipient": recipient_json(message.recipients),
        "meta": dict(message.meta),
        "num_attempts": message.num_attempts,
        "created": rfc3339(message.created),
    }
    due = manager.scheduler.due_time(message_id)
    if due is not None:
        body["due"] = rfc3339(due)
    record = manager.queued.get(message_id)
    last = record.last_response if record is not None else None
    if last is not None:
        body["last_response"] = last  # kumocore addition: why it is waiting
    if want_body:
        data = message.data
        if not data and store is not None:
            # Deferred messages drop their body from RAM; the spool still has it.
            data = await store.load_data(message) or b""
        # JSON has no bytes; a non-UTF-8 octet shows as U+FFFD, like KumoMTA's lossy view.
        body["data"] = data.decode("utf-8", errors="replace")
    return {"id": message_id, "message": body}


_NUMERIC = {"COUNT", "CONNS", "DELIV", "TEMP", "FAIL", "OLDEST"}


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    # Numbers right-aligned so their digits line up; names and pools left-aligned.
    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if headers[i] in _NUMERIC else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def format_age(seconds: float) -> str:
    """``1d02h``, ``3h05m``, ``4m07s`` or ``9s``: two units are enough to read a queue."""
    whole = max(int(seconds), 0)
    if whole >= 86400:
        return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def format_summary(summary: dict[str, Any]) -> str:
    """The human table ``kumocore queue summary`` prints (ready queues, then scheduled)."""
    ready_rows = [
        [e["name"], str(e["count"]), f"{e['connections']}/{e['connection_limit']}",
         str(e.get("delivered", 0)), str(e.get("transient", 0)), str(e.get("failed", 0)),
         e.get("last_error") or ""]
        for e in summary.get("ready", [])
    ]  # fmt: skip
    scheduled_rows = [
        [e["name"], str(e["count"]), format_age(e.get("oldest_age", 0.0)), e["egress_pool"]]
        for e in summary.get("scheduled", [])
    ]
    totals = summary.get("totals", {})
    lines = _table(["READY QUEUE", "COUNT", "CONNS", "DELIV", "TEMP", "FAIL", "LAST ERROR"],
                   ready_rows)  # fmt: skip
    lines.append("")
    lines += _table(["SCHEDULED QUEUE", "COUNT", "OLDEST", "POOL"], scheduled_rows)
    lines.append("")
    lines.append(
        f"{totals.get('messages', 0)} messages: {totals.get('scheduled', 0)} scheduled, "
        f"{totals.get('ready', 0)} ready, {totals.get('connections', 0)} connections"
    )
    return "\n".join(lines)
