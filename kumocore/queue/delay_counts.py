"""KumoMTA's per-queue delay counters for ``/metrics``:
``delayed_due_to_message_rate_throttle``, ``delayed_due_to_throttle_insert_ready`` and
``delayed_due_to_ready_queue_full`` (label ``queue``).

They count, for each scheduled queue, the due messages sent back to wait by the queue's
own ``max_message_rate`` (:mod:`kumocore.queue.queue_rate`) or by the policy's
``throttle_insert_ready_queue`` event, and those that found their ready queue holding
``max_ready`` messages. Routing counts them. kumocore does not send the last kind back to
the scheduled queue as KumoMTA does: it waits in its path's overflow, its body released
to the spool (:meth:`kumocore.queue.path_queue.PathQueue.add`).
Like KumoMTA's pruning registries, a queue's series go when the queue is reaped
(:mod:`kumocore.queue.queue_reaper`), so the maps hold no more names than there are
scheduled queues.
"""

from __future__ import annotations

__all__ = ["DelayCounts"]


class DelayCounts:
    """The three counters, by scheduled queue name."""

    __slots__ = ("by_insert_throttle", "by_rate", "by_ready_full")

    def __init__(self) -> None:
        self.by_rate: dict[str, int] = {}
        self.by_insert_throttle: dict[str, int] = {}
        self.by_ready_full: dict[str, int] = {}

    def rate_throttled(self, queue_name: str) -> None:
        self.by_rate[queue_name] = self.by_rate.get(queue_name, 0) + 1

    def insert_throttled(self, queue_name: str) -> None:
        counts = self.by_insert_throttle
        counts[queue_name] = counts.get(queue_name, 0) + 1

    def ready_full(self, queue_name: str) -> None:
        counts = self.by_ready_full
        counts[queue_name] = counts.get(queue_name, 0) + 1

    def forget(self, queue_name: str) -> None:
        """The queue was reaped: its series go."""
        self.by_rate.pop(queue_name, None)
        self.by_insert_throttle.pop(queue_name, None)
        self.by_ready_full.pop(queue_name, None)
