"""One record per message the queue manager owns, and the read-only view callers use.

The manager used to keep a message, its scheduled queue's name and its due time in the
scheduler in separate maps keyed by id; one slotted record per message keeps them
together, so they cannot disagree and a lookup finds all three at once. The scheduler's
heap holds the records themselves (:mod:`kumocore.queue.schedule`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from kumocore.queue.insert_context import ENUMERATED

if TYPE_CHECKING:
    from kumocore.mail.message import Message
    from kumocore.queue.insert_context import Context
    from kumocore.queue.schedule import ScheduledQueue


class Queued:
    """A queued message, its scheduled queue (None while rebind moves it) and, while the
    scheduler holds it, its due time (``queue.waiting`` counts the records that have one);
    after a transient failure, that response on one line (why it waits); and how it came
    to its scheduled queue this time (KumoMTA's insert context: ``Received``,
    ``DueTimeWasReached``, ...; :mod:`kumocore.queue.insert_context`)."""

    __slots__ = ("context", "due", "last_response", "message", "queue")

    def __init__(
        self, message: Message, queue: ScheduledQueue | None, context: Context = ENUMERATED
    ) -> None:
        self.message = message
        self.queue = queue
        self.context = context
        self.due: float | None = None
        self.last_response: str | None = None

    @property
    def waiting(self) -> bool:
        """Whether the scheduler holds the message (not yet due, retrying, suspended)."""
        return self.due is not None


class MessagesView(Mapping[str, "Message"]):
    """``manager.messages``: the owned messages by id, read-only (the manager owns the map)."""

    __slots__ = ("_queued",)

    def __init__(self, queued: dict[str, Queued]) -> None:
        self._queued = queued

    def __getitem__(self, message_id: str) -> Message:
        return self._queued[message_id].message

    def get(self, message_id: str, default: Message | None = None) -> Message | None:  # type: ignore[override]
        record = self._queued.get(message_id)
        return default if record is None else record.message

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._queued

    def __iter__(self) -> Iterator[str]:
        return iter(self._queued)

    def __len__(self) -> int:
        return len(self._queued)
