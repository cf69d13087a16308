"""Garbage-collector settings for a long-running server.

CPython's cyclic collector runs a young-generation pass every 700 net allocations. An MTA
allocates a few thousand short-lived objects per message (buffers, replies, records), so
with the default that pass runs several times per message and shows up as a few per cent
of CPU; reference counting frees nearly all of those objects anyway. And everything that
lives for the whole run (modules, the policy, messages recovered from the spool: a
million of them is tens of millions of objects) would be walked again by every full
collection, a pause that grows with the queue.

So the server raises the young-generation threshold and, once started (spool recovered),
freezes what exists (``gc.freeze``): those objects are never scanned again (what the
queue grows at run time is handled by :mod:`kumocore.node.gc_pause`).
They are still freed by reference counting when their count drops to zero (a delivered
message), which is how almost every object here dies. Measured: about -5 % CPU per
message, +5-7 % throughput (docs/performance.md).
"""

from __future__ import annotations

import gc
import time

from kumocore.node.gc_pause import PauseBound

__all__ = ["YOUNG_THRESHOLD", "freeze_survivors", "tune_for_server"]

#: Allocations between young-generation collections (CPython's default is 700).
YOUNG_THRESHOLD = 20_000


def tune_for_server() -> None:
    """Collect less often; call once, before the server starts.

    Until :func:`freeze_survivors`, the collector is off: start-up is the spool recovery
    scan, which allocates a few objects per message and frees almost none, the worst
    case for a collector (each pass walks the whole, growing heap and finds nothing;
    and turning it back on right after the scan runs one full pass before listening).
    """
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    gc.disable()


def freeze_survivors() -> PauseBound:
    """Collect garbage once, then exempt everything still alive from future scans.

    Called once the server has started, i.e. after spool recovery; turns the collector
    back on. (Freezing during recovery as well made no measurable difference for
    300,000 messages.) From then on a :class:`~kumocore.node.gc_pause.PauseBound` keeps
    the full collections of what the queue grows at run time short; it is returned
    (installed) for the caller to close.
    """
    started = time.perf_counter()
    gc.collect()
    took = time.perf_counter() - started
    gc.freeze()
    gc.enable()
    frozen = gc.get_freeze_count()
    bound = PauseBound(per_object=took / max(frozen, 1))
    bound.install(frozen)
    return bound

