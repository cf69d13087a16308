"""Read-only views of the queues: queue summary, message inspection, their text form.

The admin API, the CLI and ``/metrics`` all show the same numbers, so they are computed
here once. Only the :class:`~kumocore.queue.manager.QueueManager`'s public attributes are
read (``scheduled``, ``ready``, ``queued``, ``messages``, ``scheduler``, ``connection_limit``);
nothing here changes queue state. The counts come from the manager, which keeps them as
messages come and go; only the oldest age walks a queue's messages. The summary lists the
busiest :data:`MAX_LISTED` queues at most, and is computed in steps
(:mod:`kumocore.node.stepwise`) that the admin API runs a slice at a time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from kumocore.admin.series_cap import CHUNK, chunks, smallest_steps
from kumocore.logs.timestamps import rfc3339
from kumocore.mail.address import recipient_json
from kumocore.node.stepwise import Steps, run_whole

if TYPE_CHECKING:
    from kumocore.mail.message import Message
    from kumocore.queue.manager import QueueManager
    from kumocore.queue.path import EgressPath
    from kumocore.queue.schedule import ScheduledQueue
    from kumocore.spool.store import MessageStore

__all__ = [
    "MAX_LISTED",
    "format_age",
    "format_summary",
    "inspect_message",
    "queue_summary",
    "queue_summary_steps",
    "scheduled_counts",
]

T = TypeVar("T")
#: How a queue ranks: its negated sizes (busiest first), its name, its index in the copy.
_Key = tuple[Any, ...]

#: Queues of each kind the queue summary lists at most (the busiest): 100,000 scheduled
#: queues made a 13 MB answer and held the event loop 0.6 s; the totals count them all.
MAX_LISTED = 10_000
#: Ready queue entries written between two steps.
_ENTRIES_PER_STEP = 200


def scheduled_counts(manager: QueueManager) -> dict[str, int]:
    """Messages waiting in each scheduled queue (not yet due, retrying or suspended).

    A scheduled queue's ``ids`` also holds its messages that moved on to a ready queue or
    are being delivered; KumoMTA counts those under the ready queue, so only ids the
    scheduler still holds count here (``ScheduledQueue.waiting``, kept by the manager).
    """
    return {name: queue.waiting for name, queue in manager.scheduled.items()}


def _ready_entry(manager: QueueManager, ready: EgressPath) -> dict[str, Any]:
    return {
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


def _rate_text(config: Any) -> str | None:
    spec = getattr(config, "max_message_rate", None)
    return None if spec is None else f"{spec.limit}/{spec.period}s"


def _path_stats(manager: QueueManager, name: str) -> dict[str, Any]:
    stats = manager.outcomes.stats.paths.get(name)
    if stats is None:
        return {"delivered": 0, "transient": 0, "failed": 0, "last_error": None}
    return {"delivered": stats.delivered, "transient": stats.transient,
            "failed": stats.failed, "last_error": stats.last_error}  # fmt: skip


def _oldest_age(manager: QueueManager, queue: ScheduledQueue, now: float) -> Steps[float]:
    """Seconds since ``queue``'s oldest message was received.

    The one figure not kept as messages come and go (a removal would need a heap or a
    sorted index per queue): it walks the queue's ids, a chunk per step."""
    queued, oldest = manager.queued, now
    for some in chunks(queue.ids):
        for message_id in some:
            record = queued.get(message_id)
            if record is not None and record.message.created < oldest:
                oldest = record.message.created
        yield
    return round(now - oldest, 1)


def _scheduled(manager: QueueManager, limit: int, now: float,
               totals: dict[str, int]) -> Steps[list[dict[str, Any]]]:  # fmt: skip
    queues = list(manager.scheduled.values())  # the live dict changes between steps
    totals["scheduled_queues"], totals["scheduled"] = len(queues), 0

    def keys() -> Iterator[list[_Key]]:
        for start, some in _numbered(queues):
            chunk = [(-queue.waiting, queue.name, start + n) for n, queue in enumerate(some)]
            totals["scheduled"] -= sum(key[0] for key in chunk)
            yield chunk

    entries = []
    for count, name, index in (yield from smallest_steps(keys(), limit)):
        queue = queues[index]
        age = yield from _oldest_age(manager, queue, now)
        entries.append({"name": name, "count": -count, "egress_pool": queue.pool_name,
                        "oldest_age": age, "site": queue.site})  # fmt: skip
    return entries


def _ready(manager: QueueManager, limit: int,
           totals: dict[str, int]) -> Steps[list[dict[str, Any]]]:  # fmt: skip
    paths = list(manager.paths.values())
    totals["ready_queues"], totals["ready"], totals["connections"] = len(paths), 0, 0

    def keys() -> Iterator[list[_Key]]:
        for start, some in _numbered(paths):
            chunk = [(-len(path), -path.connections, path.key.name, start + n)
                     for n, path in enumerate(some)]  # fmt: skip
            totals["ready"] -= sum(key[0] for key in chunk)
            totals["connections"] -= sum(key[1] for key in chunk)
            yield chunk

    entries = []
    for n, key in enumerate((yield from smallest_steps(keys(), limit)), 1):
        entries.append(_ready_entry(manager, paths[key[-1]]))
        if n % _ENTRIES_PER_STEP == 0:
            yield
    return entries


def _numbered(items: list[T]) -> Iterator[tuple[int, list[T]]]:
    """``items`` in chunks, each with the index of its first item."""
    for start in range(0, len(items), CHUNK):
        yield start, items[start:start + CHUNK]


def queue_summary_steps(manager: QueueManager, limit: int = MAX_LISTED) -> Steps[dict[str, Any]]:
    """What ``GET /api/admin/queue-summary/v1`` returns, in steps: the ``limit`` busiest
    scheduled and ready queues, and totals over all of them."""
    now = time.time()
    # Every message this node owns, wherever it is (scheduled, ready, in flight).
    totals: dict[str, int] = {"messages": len(manager.queued)}
    scheduled = yield from _scheduled(manager, limit, now, totals)
    ready = yield from _ready(manager, limit, totals)
    order = ("messages", "scheduled", "ready", "connections", "scheduled_queues",
             "ready_queues")  # fmt: skip
    return {"scheduled": scheduled, "ready": ready, "totals": {k: totals[k] for k in order}}


def queue_summary(manager: QueueManager, limit: int = MAX_LISTED) -> dict[str, Any]:
    """:func:`queue_summary_steps` at once (``kumocore queue summary`` prints it)."""
    return run_whole(queue_summary_steps(manager, limit))


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
