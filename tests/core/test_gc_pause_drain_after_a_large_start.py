"""The pause bound's drain check (kumocore.node.gc_pause) gives a drained queue back to
the collector on a real node too, where what the start froze alone would walk longer
than half the bound (95,000 objects, 80-95 ms measured for a Lua-policy node)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from kumocore.node.gc_pause import PauseBound


@pytest.fixture
def collector() -> Iterator[None]:
    """The server's start: what exists frozen; restored afterwards."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
    gc.collect()


class _Cyclic:
    def __init__(self) -> None:
        self.me = self


def test_cycles_frozen_at_run_time_are_reclaimed_when_the_start_alone_walks_long(
    collector: None,
) -> None:
    frozen_at_start = gc.get_freeze_count()
    # Measured at start: walking what the start froze took the whole 50 ms bound.
    bound = PauseBound(per_object=0.05 / frozen_at_start, bound=0.0)  # every one freezes
    bound.install()
    try:
        session = _Cyclic()  # alive when the run-time freeze comes, garbage after
        gone = weakref.ref(session)
        gc.collect()
        assert bound.freezes == 1
        del session
        bound.bound = 0.05
        # The queue drained: only a handful of objects were frozen at run time.
        assert gc.get_freeze_count() - frozen_at_start < 1000
        assert bound.check_drained(), "the start's own frozen set kept the drain check shut"
        assert gone() is None and bound.unfreezes == 1
        assert not bound.check_drained(), "nothing frozen at run time since"
    finally:
        bound.close()


def test_a_queue_still_frozen_at_run_time_stays_frozen(collector: None) -> None:
    frozen_at_start = gc.get_freeze_count()
    bound = PauseBound(per_object=0.05 / frozen_at_start, bound=0.0)
    bound.install()
    try:
        queue = [_Cyclic() for _ in range(frozen_at_start)]  # as many again, still queued
        gc.collect()
        assert bound.freezes >= 1
        bound.bound = 0.05
        assert not bound.check_drained() and bound.unfreezes == 0
        assert len(queue) == frozen_at_start
    finally:
        bound.close()
