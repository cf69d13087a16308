"""Micro-benchmark: the collector's full-collection pauses while a queue grows at run time.

``python -m bench.micro.gc_pause [--messages 1500000] [--without-bound]``

Builds ``Message`` objects as a queue holds them (a destination down), after the
server's collector set-up (:func:`kumocore.node.gctune.tune_for_server` then
:func:`~kumocore.node.gctune.freeze_survivors`), and prints every full collection's
wall time. ``--without-bound`` freezes what exists at start as the server did before
:mod:`kumocore.node.gc_pause`, for the comparison. Run each in a fresh process.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time
from typing import Any

from kumocore.mail.message import Message
from kumocore.node import gctune


class FullCollections:
    """Every full collection's wall time (a ``gc.callbacks`` entry)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds.append(time.perf_counter() - self._started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_500_000)
    parser.add_argument("--without-bound", action="store_true")
    args = parser.parse_args()
    gctune.tune_for_server()
    bound = None
    if args.without_bound:
        gc.collect()
        gc.freeze()
        gc.enable()
    else:
        bound = gctune.freeze_survivors()
    collections = FullCollections()
    gc.callbacks.insert(0, collections)  # before the bound's: it times the walk alone
    started = time.perf_counter()
    queue = [Message("s@example.com", f"r{n}@example.net", b"Subject: x\r\n\r\nbody\r\n",
                     meta={"tenant": "t", "campaign": "c"})
             for n in range(args.messages)]  # fmt: skip
    built = time.perf_counter() - started
    each = " ".join(f"{s * 1000:.0f}" for s in collections.seconds)
    print(f"{'without' if bound is None else 'with'} the bound: {len(queue):,} messages "
          f"built in {built:.1f}s; full collections (ms): {each}; longest "
          f"{max(collections.seconds, default=0) * 1000:.0f} ms, all "
          f"{sum(collections.seconds) * 1000:.0f} ms; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")  # fmt: skip
    if bound is not None:
        del queue
        started = time.perf_counter()
        drained = bound.check_drained()
        print(f"freezes {bound.freezes}; queue dropped: unfrozen and collected {drained} "
              f"in {(time.perf_counter() - started) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
