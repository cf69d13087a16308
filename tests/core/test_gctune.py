"""The server's collector settings: fewer young collections, start-up objects frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from kumocore.node.gctune import YOUNG_THRESHOLD, freeze_survivors, tune_for_server


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
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
