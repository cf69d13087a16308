"""``GET /api/admin/inspect-sched-q/v1``: KumoMTA's ``InspectSchedQV1Response`` for one
scheduled queue, bounded.

A queue of 100,000 messages, asked without a ``limit``, made a 24 MB answer and held the
event loop 1.25 s; with ``limit=10`` it still sorted all of them (0.13 s). So:

* at most :data:`MAX_MESSAGES` messages are listed, however large the ``limit``
  (``num_scheduled`` still counts them all);
* the oldest are found a chunk of ids per step (each chunk sorted, then the chunks
  merged), and the entries are written a few dozen per step
  (:mod:`kumocore.node.stepwise`);
* with ``want_body=true`` the bodies listed add up to :data:`BODY_BUDGET` bytes at most:
  an entry whose body no longer fits has no ``data`` (as one whose body is not in memory).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kumocore.admin.series_cap import chunks, smallest_steps
from kumocore.logs.timestamps import rfc3339
from kumocore.mail.address import recipient_json
from kumocore.node.stepwise import Steps

if TYPE_CHECKING:
    from kumocore.mail.message import Message
    from kumocore.queue.manager import QueueManager

__all__ = ["BODY_BUDGET", "MAX_MESSAGES", "sched_q_steps"]

#: Messages listed at most, whatever ``limit`` asks for.
MAX_MESSAGES = 10_000
#: Bytes of message bodies one answer carries at most (``want_body=true``).
BODY_BUDGET = 16 * 1024 * 1024
#: Entries written between two steps.
_ENTRIES_PER_STEP = 50


def _oldest(manager: QueueManager, ids: set[str], count: int) -> Steps[list[Message]]:
    """The ``count`` oldest messages of ``ids``, in steps."""
    messages = manager.messages

    def runs() -> Iterator[list[tuple[float, str]]]:
        for some in chunks(ids):
            yield [(m.created, i) for i in some if (m := messages.get(i)) is not None]

    oldest = yield from smallest_steps(runs(), count)
    # A message may have gone while the loop ran between steps.
    return [m for _, i in oldest if (m := messages.get(i)) is not None]


def _entry(manager: QueueManager, message: Message, data: str | None) -> dict[str, Any]:
    due = manager.scheduler.due_time(message.id)
    entry: dict[str, Any] = {
        "sender": message.sender.email, "recipient": recipient_json(message.recipients),
        "meta": dict(message.meta), "num_attempts": message.num_attempts,
        "created": rfc3339(message.created), "scheduling": {},
        "due": rfc3339(due) if due is not None else None,
    }  # fmt: skip
    if data is not None:
        entry["data"] = data
    return {"id": message.id, "message": entry}


def sched_q_steps(manager: QueueManager, queue_name: str, *, limit: int,
                  want_body: bool) -> Steps[dict[str, Any]]:  # fmt: skip
    """The answer for ``queue_name`` (body of messages held in memory only), in steps."""
    queue = manager.scheduled.get(queue_name)
    count = min(limit, MAX_MESSAGES)
    listed = (yield from _oldest(manager, queue.ids, count)) if queue and count else []
    budget = BODY_BUDGET if want_body else 0
    entries = []
    for n, message in enumerate(listed, 1):
        data = None
        if message.data and len(message.data) <= budget:
            budget -= len(message.data)
            data = message.data.decode("utf-8", errors="replace")
        entries.append(_entry(manager, message, data))
        if n % _ENTRIES_PER_STEP == 0:
            yield
    waiting = queue.waiting if queue else 0
    now = rfc3339(time.time())
    return {
        "queue_name": queue_name, "num_scheduled": waiting, "delayed_metric": waiting,
        "now": now, "last_changed": now,
        "queue_config": queue.config.to_dict() if queue else {}, "messages": entries,
    }  # fmt: skip
