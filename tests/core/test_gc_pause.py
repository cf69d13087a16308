"""The collection pause bound (kumocore.node.gc_pause): a queue grown at run time is
frozen in steps, so no full collection walks all of it; cycles frozen alive are
reclaimed once the queue has drained."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from kumocore.mail.message import Message
from kumocore.node.gc_pause import PauseBound


@pytest.fixture
def collector() -> Iterator[None]:
    """The server's start: collector tuned, what exists frozen; restored afterwards."""
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, threshold[1], threshold[2])
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    gc.collect()


class _Durations:
    """Every middle and full collection's wall time, recorded by a callback of its own."""

    def __init__(self) -> None:
        self.seen: list[float] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] > 0:
            if phase == "start":
                self._started = time.perf_counter()
            else:
                self.seen.append(time.perf_counter() - self._started)


def test_a_queue_grown_at_run_time_is_never_walked_in_one_long_pause(collector: None) -> None:
    durations = _Durations()
    bound = PauseBound(per_object=1e-7, bound=0.02)
    gc.callbacks.append(durations)  # before the bound's, so it times the walk alone
    bound.install()
    try:
        # Messages as a queue holds them (a destination down), built while the server runs.
        queue = [Message("s@example.com", f"r{n}@example.net", b"Subject: x\r\n\r\nbody\r\n",
                         meta={"tenant": "t", "campaign": [n]})
                 for n in range(400_000)]  # fmt: skip
    finally:
        bound.close()
        gc.callbacks.remove(durations)
    assert bound.freezes >= 1, durations.seen
    # What a full collection of that queue costs on this machine, now, as the control.
    gc.unfreeze()
    started = time.perf_counter()
    gc.collect()
    whole = time.perf_counter() - started
    assert len(queue) == 400_000
    print(f"longest {max(durations.seen):.3f}s of {len(durations.seen)}, whole {whole:.3f}s")
    # Relative to the control, so a loaded machine slows both: without the bound the
    # last full collections walk most of the queue (0.1-0.2 s here).
    assert max(durations.seen) < whole / 2, (durations.seen, whole)


class _Cyclic:
    def __init__(self) -> None:
        self.me = self


def test_cycles_frozen_alive_are_reclaimed_once_the_queue_drains(collector: None) -> None:
    bound = PauseBound(per_object=1e-7, bound=0.0)  # every full collection freezes
    bound.install()
    try:
        session = _Cyclic()  # alive when the freeze comes, garbage after
        gone = weakref.ref(session)
        gc.collect()
        assert bound.freezes == 1
        del session
        gc.collect()
        assert gone() is not None, "frozen: the collector no longer looks at it"
        bound.bound = 1e-9  # collecting the frozen set would not fit: it stays frozen
        assert not bound.check_drained() and gone() is not None
        bound.bound = 60.0  # now it would
        assert bound.check_drained() and bound.unfreezes == 1
        assert gone() is None
        assert not bound.check_drained(), "nothing frozen at run time since"
    finally:
        bound.close()


def test_a_middle_generation_collection_over_the_bound_freezes_and_a_young_one_never(
    collector: None,
) -> None:
    bound = PauseBound(per_object=1e-7, bound=0.0)  # any collection it watches freezes
    bound.install()
    try:
        kept = [[n] for n in range(1000)]  # survivors of the young collection below
        gc.collect(0)
        assert bound.freezes == 0, "young collections are never frozen after"
        frozen = gc.get_freeze_count()
        gc.collect(1)
        assert bound.freezes == 1 and gc.get_freeze_count() >= frozen + len(kept)
        assert bound.longest == 0.0, "longest: full collections only"
    finally:
        bound.close()


async def test_the_drain_check_runs_on_the_loop_every_interval(collector: None) -> None:
    bound = PauseBound(per_object=1e-9, bound=0.0, check_every=0.05)
    bound.install()
    try:
        gc.collect()
        assert bound.freezes == 1
        bound.bound = 60.0
        for _ in range(100):
            if bound.unfreezes:
                break
            await asyncio.sleep(0.02)
        assert bound.unfreezes == 1
    finally:
        bound.close()
    assert bound._on_collection not in gc.callbacks
