"""Writes that wait for another spool's sync (the writer thread's bookkeeping).

The core removes a delivered message by deleting its commit marker (meta record) and
then its body, and neither delete is synced. Written as they come, a later cycle's
sync of the body's spool could make the body's delete durable while the marker's delete
is not yet: a power cut then would leave the marker of a delivered message without its
body. So a body's delete (``GroupCommitSpool.delete_after``) waits here until the markers'
spool has synced everything written to it so far, the marker's delete among it. Under
load that spool syncs in every cycle (its markers are puts), so the wait is usually
none; when nothing else syncs it, the wait ends with a sync of its own
:data:`WAIT_BOUND` after its first unsynced write.

Everything here belongs to the writer thread; the loop never touches it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kumocore.spool.commit.ops import Op, Writable

__all__ = ["WAIT_BOUND", "Deferred"]

#: Seconds a write may wait for another spool's sync before that spool is synced for it.
WAIT_BOUND = 0.02


class Deferred:
    """Which spools have unsynced writes, since when, and the writes waiting on them."""

    def __init__(self) -> None:
        self._dirty_since: dict[Writable, float] = {}  # first write not covered by a sync
        self._waiting: dict[Writable, list[Op]] = {}  # ops to write once the key syncs
        self._ready: list[Op] = []  # ops free to be written in the next cycle

    def wrote(self, spool: Writable, *, synced: bool, wrote_any: bool, now: float) -> None:
        """A step of a cycle wrote ``spool`` (and synced it, or not)."""
        if synced:
            self._dirty_since.pop(spool, None)
            self._ready.extend(self._waiting.pop(spool, ()))
        elif wrote_any:
            self._dirty_since.setdefault(spool, now)

    def drop(self, spool: Writable) -> None:
        """Forget what ``spool`` owes, what waits on it and what is to be written to it:
        a write or sync of it failed, or it was closed meanwhile.

        A failed database is broken until reopened (``RecoveringSpool``), so waiting on
        or retrying it would spin. A body whose delete is dropped here is collected at
        the next start; a marker is never left without its body."""
        self._dirty_since.pop(spool, None)
        self._waiting.pop(spool, None)
        self._ready = [op for op in self._ready if op[0] is not spool]

    def wait_for(self, spool: Writable, op: Op) -> None:
        """Write ``op`` once everything written to ``spool`` so far is synced."""
        if spool in self._dirty_since:
            self._waiting.setdefault(spool, []).append(op)
        else:
            self._ready.append(op)

    def due(self, spool: Writable, now: float, force: bool) -> bool:
        """Whether this cycle must sync ``spool`` for the writes waiting on it."""
        if spool not in self._waiting:
            return False
        return force or now - self._dirty_since[spool] >= WAIT_BOUND

    def next_due(self, now: float) -> float | None:
        """Seconds until the thread has work without a new ticket; None if it has none."""
        if self._ready:
            return 0.0
        if not self._waiting:
            return None
        oldest = min(self._dirty_since[spool] for spool in self._waiting)
        return max(0.0, oldest + WAIT_BOUND - now)

    def take_ready(self) -> list[Op]:
        ready, self._ready = self._ready, []
        return ready

    def forget_all_but(self, live: Collection[Writable]) -> None:
        """:meth:`drop` every spool not in ``live`` (closed meanwhile).

        A closing spool flushes first (``Committer.flush``), so this only drops what a
        failed write or sync left behind."""
        known = {*self._dirty_since, *self._waiting, *(op[0] for op in self._ready)}
        for spool in known.difference(live):
            self.drop(spool)
