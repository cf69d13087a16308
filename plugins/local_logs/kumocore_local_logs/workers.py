"""Local logs under ``kumocore serve --workers N``: one log directory, N writers.

Every worker writes its own segments into the configured ``log_dir``, so readers
(``kumocore logs``, KumoMTA-style tailers) still find one directory of files sorted by
time. Two things need the worker's identity:

* segment names: ``<time>.w<k>[suffix]``, so two workers opening a segment in the same
  nanosecond never race for one name;
* start-up, where leftover writable segments are marked done. A worker must not mark
  another live worker's open segment done, so it only finishes its own (``.w<k>``), those
  of workers that no longer exist (``.w<j>`` with ``j >= N`` and ``j % N == k``, as for
  spool shards), and, for worker 0, untagged ones from a single-process run.

The identity comes from ``KUMOCORE_WORKER_INDEX`` / ``KUMOCORE_WORKER_COUNT``, which
kumocore sets in each worker's environment (docs/operations.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["WorkerTag"]

INDEX_ENV = "KUMOCORE_WORKER_INDEX"
COUNT_ENV = "KUMOCORE_WORKER_COUNT"
_TAGGED = re.compile(r"\d{8}-\d{6}\.\d{9}\.w(\d+)")


@dataclass(frozen=True, slots=True)
class WorkerTag:
    """This process's place among the node's workers."""

    index: int
    count: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> WorkerTag | None:
        """The tag of a ``--workers N`` worker; None in a single-process server."""
        index, count = env.get(INDEX_ENV, ""), env.get(COUNT_ENV, "")
        if not (index.isdigit() and count.isdigit()) or int(count) < 2:
            return None
        return cls(int(index), int(count))

    @property
    def marker(self) -> str:
        """What goes between a segment's time stamp and its suffix."""
        return f".w{self.index}"

    def owns_leftover(self, name: str) -> bool:
        """Whether this worker finishes the leftover segment ``name`` at start-up."""
        tagged = _TAGGED.match(name)
        if tagged is None:
            return self.index == 0
        writer = int(tagged[1])
        return writer == self.index or (writer >= self.count and writer % self.count == self.index)
