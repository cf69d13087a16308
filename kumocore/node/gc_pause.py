"""A bound on the cyclic collector's full-collection pause while a queue grows.

The server freezes what exists once its spool is recovered (:mod:`kumocore.node.gctune`),
so messages recovered at start are never scanned. Messages that pile up at run time (a
destination down for hours) were not frozen: CPython runs a full collection each time
the objects that survived the younger generations grew by a quarter, and it walks every
one of them with the event loop stopped. 1.33 M queued messages made it a 459 ms pause.

:class:`PauseBound` watches full collections (``gc.callbacks``). When one takes longer
than ``bound``, its survivors are frozen as it ends: what it just walked and kept is
never walked again, so the next one walks only what was born since, and no full
collection takes much more than the bound, however long the queue grows. Middle-generation
collections are watched the same way: when thousands of messages change at once (an
admin rebind of 40,000), the survivors of ten young collections are walked there first
(80 ms measured), and then again by the full collection that follows.

The price of freezing at run time is that a reference cycle frozen while alive is never
reclaimed once it becomes garbage (a queued message dies by reference counting, frozen
or not; a session's cycles do not). So the frozen set is counted every ``check_every``
seconds while run-time freezes are in force; once what run-time freezes added to it
would walk within half the bound (the queue drained), it is unfrozen, collected in one
pause (the leaked cycles reclaimed) and the survivors frozen again, as at start. That
pause walks what the start froze as well, so it lasts about as long as the start's own
collection plus at most half the bound. Counting the start's part in the estimate kept a
real node frozen for good: its start alone (95,000 objects, 80-95 ms) was over half the
bound, so a drained queue was never given back.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

__all__ = ["DEFAULT_BOUND", "PauseBound"]

#: The longest full collection let run before its survivors are frozen (seconds).
DEFAULT_BOUND = 0.05
#: How often the frozen set is counted while run-time freezes are in force: counting
#: walks it (about a third of what collecting it costs), so not often.
CHECK_EVERY = 300.0


class PauseBound:
    """Freezes the survivors of any full collection longer than ``bound`` and unfreezes
    them again once the queue has drained. :meth:`install` once the server started.

    ``per_object`` is what a full collection costs per object on this machine (measured
    at start, :func:`kumocore.node.gctune.freeze_survivors`); a large heap costs more per
    object than the small one measured, so the drain check wants an estimate of half the
    bound before it unfreezes."""

    def __init__(
        self, per_object: float, bound: float = DEFAULT_BOUND, check_every: float = CHECK_EVERY
    ) -> None:
        self.per_object = per_object
        self.bound = bound
        self.check_every = check_every
        #: Full collections that ran over the bound and froze their survivors.
        self.freezes = 0
        #: Times the run-time frozen set was given back to the collector.
        self.unfreezes = 0
        #: The longest full collection seen (seconds).
        self.longest = 0.0
        self._started = 0.0
        self._runtime_frozen = False
        self._timer: asyncio.TimerHandle | None = None
        self._threshold: tuple[int, int, int] | None = None
        #: The frozen set's size when installed (the start's freeze) or last re-frozen.
        self._frozen_before = 0

    def install(self, frozen: int | None = None) -> None:
        """Start watching full collections; with a running loop, also the drain check.
        ``frozen``: the frozen set's size, when the caller has just counted it (counting
        walks the whole set: a million recovered messages are millions of objects).

        Also lets a full collection be considered at every middle-generation one (the
        oldest threshold 0; CPython's quarter-growth rule still decides): with the
        default 10, and the server's young threshold, one came only every 2.4 M
        allocations, so the first one walked that much however small the bound."""
        if self._on_collection not in gc.callbacks:
            gc.callbacks.append(self._on_collection)
            self._frozen_before = gc.get_freeze_count() if frozen is None else frozen
            self._threshold = gc.get_threshold()
            young, middle, _ = self._threshold
            gc.set_threshold(young, middle, 0)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(self.check_every, self._periodic_check, loop)

    def close(self) -> None:
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)
        if self._threshold is not None:
            gc.set_threshold(*self._threshold)
            self._threshold = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collection, in whichever thread triggered it: cheap, no logging.
        # The middle generation too: when thousands of messages change at once (an admin
        # rebind of 40,000), what survives ten young collections is walked there, 80 ms;
        # freezing it keeps that and the full collection after it from walking it again.
        generation = info["generation"]
        if generation == 0:
            return
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        if generation == 2:
            self.longest = max(self.longest, took)
        if took > self.bound:
            gc.freeze()  # the collection is over: its survivors, and the young since
            self._runtime_frozen = True
            self.freezes += 1

    def _periodic_check(self, loop: asyncio.AbstractEventLoop) -> None:
        self.check_drained()
        self._timer = loop.call_later(self.check_every, self._periodic_check, loop)

    def check_drained(self) -> bool:
        """Give the run-time frozen set back to the collector once what run-time freezes
        added to it would walk within half the bound; True when it did."""
        if not self._runtime_frozen:
            return False
        added = gc.get_freeze_count() - self._frozen_before  # a walk of the frozen set
        if 2 * added * self.per_object > self.bound:
            return False
        gc.unfreeze()
        gc.collect()  # the start's walk and at most half the bound; reclaims frozen cycles
        gc.freeze()
        self._frozen_before = gc.get_freeze_count()
        self._runtime_frozen = False
        self.unfreezes += 1
        return True
