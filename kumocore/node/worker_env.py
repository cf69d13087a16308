"""Which worker of ``kumocore serve --workers N`` this process is, from its environment.

The supervisor (:mod:`kumocore.node.workers`) sets ``KUMOCORE_WORKER_INDEX`` and
``KUMOCORE_WORKER_COUNT`` in each worker's environment; parts that share a directory
between workers (segment names, leftovers) read them here. A leaf: it imports nothing of
kumocore, so the supervisor and those parts need not import each other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["COUNT_ENV", "INDEX_ENV", "worker_place"]

INDEX_ENV = "KUMOCORE_WORKER_INDEX"
COUNT_ENV = "KUMOCORE_WORKER_COUNT"


def worker_place(env: Mapping[str, str] = os.environ) -> tuple[int, int] | None:
    """``(index, count)`` of this worker; None for a single-process node (or a count
    under two, which is one)."""
    index, count = env.get(INDEX_ENV, ""), env.get(COUNT_ENV, "")
    if not (index.isdigit() and count.isdigit()) or int(count) < 2:
        return None
    return int(index), int(count)
