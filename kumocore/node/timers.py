"""One event-loop timer serving many deadlines.

``asyncio.timeout`` creates, schedules and cancels a timer handle per use: several per
message on a busy connection. Where many waits share one object (the replies of a
delivery connection, the waiters on a log sink), one timer armed for the earliest
deadline asked for is enough: its callback looks at what is due and arms it again for
the next deadline. Arming for a later deadline than the pending one changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["EarliestDeadline"]


class EarliestDeadline:
    """Calls ``callback`` once the earliest deadline passed to :meth:`arm` is reached."""

    __slots__ = ("_at", "_callback", "_handle")

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self._at = 0.0

    def arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Fire at ``deadline`` (loop time) at the latest."""
        if self._handle is not None and self._at <= deadline:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = loop.call_at(deadline, self._fire)
        self._at = deadline

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None  # the callback may arm it again
        self._callback()
