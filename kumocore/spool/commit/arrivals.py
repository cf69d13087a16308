"""Writes on their way: how the writer thread knows its commit window may close early.

The first ticket after an idle spell waits up to :data:`~.committer.COMMIT_WINDOW` for
company, so that several messages share a sync. Under a steady SMTP load the sessions
of a worker move in step: every one of them gets its ``250`` from the same cycle, sends
its next message, and their bodies reach the spool within a millisecond of each other.
A fixed window then makes the last body of such a burst wait for nothing after it, and
the whole worker with it (its sessions all wait for this one cycle).

So reception *announces* a body when it starts to read it (:meth:`Arrivals.expect`),
and says when it has handed that body to the spool (:meth:`Expected.arrived`) or given
up on it (:meth:`Expected.withdrawn`). While announced bodies are outstanding the writer
thread waits until the last of them is settled, at most the window (a slow client's body
holds the cycle back by no more than the fixed window did). A cycle whose tickets came
from bodies handed over, none outstanding any more, starts at once. Writers that
announce nothing (HTTP injection, a requeue) keep the fixed window.

Loop side: :meth:`Arrivals.expect`, :meth:`Expected.arrived`, :meth:`Expected.withdrawn`.
Thread side: :meth:`Arrivals.wait_for_company`. The counters are plain ints: each side reads them
under the GIL, and a stale read costs at most one window, never a write.
"""

from __future__ import annotations

import threading
import time

__all__ = ["Arrivals", "Expected"]


class Expected:
    """One announced body: :meth:`arrived` once it was handed to the spools, or
    :meth:`withdrawn` once it will not be; whichever comes first counts, once."""

    __slots__ = ("_arrivals",)

    def __init__(self, arrivals: Arrivals) -> None:
        self._arrivals: Arrivals | None = arrivals

    def arrived(self) -> None:
        """The body was handed to the spools: its write is in (or on its way to) the inbox."""
        arrivals, self._arrivals = self._arrivals, None
        if arrivals is not None:
            arrivals._settled(handed_over=True)

    def withdrawn(self) -> None:
        """The body will not be written (refused, failed, its client gone)."""
        arrivals, self._arrivals = self._arrivals, None
        if arrivals is not None:
            arrivals._settled(handed_over=False)


class Arrivals:
    """The bodies announced on one loop and not yet handed to its spools."""

    __slots__ = ("_none_pending", "pending", "total_arrived")

    def __init__(self) -> None:
        #: Announced and neither arrived nor withdrawn.
        self.pending = 0
        #: Handed over since the start (the writer compares it between two cycles).
        self.total_arrived = 0
        self._none_pending = threading.Event()
        self._none_pending.set()

    def expect(self) -> Expected:
        """On the loop: a body is on its way to the spool."""
        self.pending += 1
        if self.pending == 1:
            self._none_pending.clear()
        return Expected(self)

    def _settled(self, *, handed_over: bool) -> None:
        self.pending -= 1
        # Only a body handed over makes the writer's next cycle start without the window:
        # a withdrawn one wrote nothing, so a write that follows it waits as unannounced.
        if handed_over:
            self.total_arrived += 1
        if not self.pending:
            self._none_pending.set()

    def wait_for_company(self, window: float, arrived_before: int) -> None:
        """On the writer thread, with a first ticket in hand: wait for the bodies still
        announced, at most ``window``; start at once if announced bodies arrived since
        ``arrived_before`` and none is outstanding; else (nothing announced: another kind
        of writer) wait the whole window."""
        if self.pending:
            self._none_pending.wait(window)
        elif self.total_arrived == arrived_before:
            time.sleep(window)
