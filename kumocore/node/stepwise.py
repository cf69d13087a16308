"""Long CPU work done on the event loop a slice at a time, rather than on a worker thread.

A worker thread does not keep the loop free for pure-Python work: both need the GIL. With
CPython's GIL, a thread that wants it back waits for the holder's switch interval (5 ms)
every time, so the loop, which gives the GIL up at every poll, pays up to 5 ms per turn,
and when two or more threads compete, the one the GIL is handed to is not necessarily the
loop. Checking queued ``deferred_generation`` requests of 80,000 recipients on worker
threads made another client's EHLO wait 120-230 ms in one run of ten and the loop stall
for up to 772 ms (docs/performance.md, thirty-second round).

So such work is written as a generator that yields between steps (a recipient, a few
hundred recipients), and :func:`run_stepwise` runs steps until a slice of
:data:`SLICE_SECONDS` is spent, then lets every other ready callback and socket run
before the next slice. The same generator runs whole, without the loop, through
:func:`run_whole`.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Generator, Iterable
from typing import Any, TypeVar

__all__ = ["SLICE_SECONDS", "Slices", "Steps", "run_stepwise", "run_whole", "sorted_steps"]

T = TypeVar("T")

#: Work done between two turns of the loop: what another client may wait for, at most,
#: beside one step (a step is expected to be far shorter).
SLICE_SECONDS = 0.004

#: Work that yields (nothing) between its steps and returns its result.
Steps = Generator[None, None, T]


class Slices:
    """Hands the event loop back once ``budget`` seconds of work have run since the last
    time: ``await slices.pause()`` between two items of a long loop."""

    def __init__(self, budget: float = SLICE_SECONDS) -> None:
        self.budget = budget
        self._until = time.monotonic() + budget

    async def pause(self) -> None:
        if time.monotonic() >= self._until:
            await asyncio.sleep(0)
            self._until = time.monotonic() + self.budget


async def run_stepwise(steps: Steps[T], budget: float = SLICE_SECONDS) -> T:
    """Run ``steps`` to its end on the running loop, a turn of the loop after each
    ``budget`` seconds of work."""
    slices = Slices(budget)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        await slices.pause()


def run_whole(steps: Steps[T]) -> T:
    """Run ``steps`` to its end at once (no loop, or work known to be small)."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def sorted_steps(items: Iterable[T], key: Callable[[T], Any], run: int = 2000) -> Steps[list[T]]:
    """``sorted(items, key=key)`` in steps: runs of ``run`` items are sorted one a step,
    then merged ``run`` items a step. (One ``sorted`` of 40,000 shuffled actions held the
    loop 30 ms.) Stable, like ``sorted``: ``heapq.merge`` takes equal items from the
    earlier run first."""
    whole = list(items)
    runs: list[list[T]] = []
    for start in range(0, len(whole), run):
        runs.append(sorted(whole[start:start + run], key=key))
        yield
    if len(runs) <= 1:
        return runs[0] if runs else []
    merged: list[T] = []
    for item in heapq.merge(*runs, key=key):
        merged.append(item)
        if len(merged) % run == 0:
            yield
    return merged
