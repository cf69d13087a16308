"""A server's collector settings in the test's own process, and the process's given back.

``kumocore serve`` and ``kumocore tsa serve`` turn the collector off while they start,
then collect, freeze what exists and bound full collections (:mod:`kumocore.node.gctune`).
A test that measures the loop's gaps with a node or service running in-process wants the
same settings, or it measures full collections of pytest's own heap (the modules and
leftovers of thousands of tests: 20-110 ms a walk), which no server walks.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator

from kumocore.node.gctune import freeze_survivors, tune_for_server

__all__ = ["collector_restored", "server_gc"]


@contextlib.contextmanager
def collector_restored() -> Iterator[None]:
    """The collector as it was before the block (enabled, thresholds, nothing frozen),
    whatever a server started in the block did to it."""
    threshold, enabled = gc.get_threshold(), gc.isenabled()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        if enabled:
            gc.enable()


@contextlib.contextmanager
def server_gc() -> Iterator[Callable[[], None]]:
    """``kumocore serve``'s collector: off while the node is filled (as while a server
    recovers its spool); call the yielded function once it is: it collects, freezes what
    exists and bounds full collections from then on."""
    with collector_restored():
        tune_for_server()
        bounds = []
        try:
            yield lambda: bounds.append(freeze_survivors())
        finally:
            for bound in bounds:
                bound.close()
