"""The server's collector settings: fewer young collections, start-up objects frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from kumocore.node.gc_pause import PauseBound
from kumocore.node.gctune import YOUNG_THRESHOLD, freeze_survivors, tune_for_server


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    for callback in [c for c in gc.callbacks if isinstance(getattr(c, "__self__", None),
                                                           PauseBound)]:  # fmt: skip
        gc.callbacks.remove(callback)
    gc.unfreeze()
    gc.set_threshold(*threshold)
    gc.enable()


def test_tuning_raises_only_the_young_generation_threshold(restored_gc: None) -> None:
    _, older, oldest = gc.get_threshold()
    tune_for_server()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, older, oldest)


def test_objects_alive_at_start_are_frozen_and_later_ones_are_not(restored_gc: None) -> None:
    alive_at_start = [object() for _ in range(10)]
    freeze_survivors()
    frozen = gc.get_freeze_count()
    assert frozen > len(alive_at_start)
    later = [[] for _ in range(100)]  # noqa: F841 - tracked containers, created after
    # Not "== frozen": a frozen object that dies leaves the permanent generation, and in a
    # test process other threads (left by earlier tests) may free some meanwhile.
    assert gc.get_freeze_count() <= frozen


def test_collector_is_off_from_tuning_until_survivors_are_frozen(restored_gc: None) -> None:
    # The recovery scan runs in between: no collection may walk the growing heap.
    tune_for_server()
    assert not gc.isenabled()
    freeze_survivors()
    assert gc.isenabled()


def test_freezing_the_survivors_starts_the_pause_bound_with_a_measured_cost(
    restored_gc: None,
) -> None:
    bound = freeze_survivors()
    assert bound._on_collection in gc.callbacks
    # A full collection of the start-up heap over its size: nanoseconds, not zero.
    assert 0 < bound.per_object < 1e-5
    bound.close()
    assert bound._on_collection not in gc.callbacks
