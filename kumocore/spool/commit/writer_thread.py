"""How the committer's writer thread is scheduled, and how the loop sees whether it waits.

Linux only in effect: elsewhere the thread keeps the default policy and the loop assumes
it may be waiting (see :func:`waits_for_the_loop`).
"""

from __future__ import annotations

import contextlib
import os
import threading

__all__ = ["run_as_batch", "waits_for_the_loop"]


def run_as_batch() -> None:
    """Make the calling thread ``SCHED_BATCH`` (Linux; elsewhere nothing happens).

    A batch thread that wakes up does not preempt the thread running on its CPU, here
    usually the event loop that just handed it a cycle: the loop goes on until it waits,
    and the sync starts a few microseconds later instead of costing the loop two context
    switches. It gets its fair share of the CPU as before; it only gives up the claim to
    run at once. Measured: 6-10 % less CPU per message with DKIM and at 100 KB
    (docs/performance.md, seventh round).
    """
    setter = getattr(os, "sched_setscheduler", None)
    batch = getattr(os, "SCHED_BATCH", None)
    if setter is None or batch is None:
        return
    with contextlib.suppress(OSError):  # a sandbox may refuse it: the default is fine
        setter(0, batch, os.sched_param(0))


def waits_for_the_loop(thread: threading.Thread | None) -> bool:
    """Whether ``thread``, which has a cycle, waits for something the loop's thread holds.

    Asleep on a lock (``S``: the GIL) or runnable (``R``: as a batch thread it waits for
    the CPU the loop runs on, or it is running and a sleep costs the loop 0.1 ms), as
    opposed to syncing (``D``: ``fdatasync`` sleeps uninterruptibly), when handing over
    would not help. True where Linux's ``/proc`` cannot tell."""
    if thread is None or thread.native_id is None:
        return False
    try:
        with open(f"/proc/self/task/{thread.native_id}/stat", "rb") as stat:
            state = stat.read().rsplit(b") ", 1)[-1][:1]
    except OSError:
        return True
    return state in (b"S", b"R")
