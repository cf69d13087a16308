"""The accounting log's segment files: KumoMTA's names, and which leftovers a process may
mark done when several workers share one ``log_dir``.

KumoMTA names a segment by its opening time in UTC, chrono's ``acct-%Y%m%d-%H%M%S%.f``:
the fraction has no digits for a whole second, else 3, 6 or 9 (the fewest that hold it
exactly), so ``acct-20261206-091314.123456789``. A single-process kumocore writes exactly
those names. Under ``kumocore serve --workers N`` (N >= 2) each worker appends ``-w<k>``:
two workers opening a segment in the same nanosecond never race for one name, and a
worker starting up can tell its own leftovers from another live worker's open segment.
``-`` sorts before ``.`` and every digit, so the names of a directory still sort by time
whatever the fraction's width. Within one process a name already taken (two segments in
one nanosecond) moves the time on by a nanosecond; files are created exclusively, so a
name is never shared.

Leftovers (segments a previous run left writable, typically after a crash) are marked
done as KumoMTA does at start-up, by the rule the local-logs sink uses: a worker takes
its own (``-w<k>``), those of workers that no longer exist (``-w<j>``, ``j >= N``,
``j % N == k``) and, worker 0 only, untagged files (a single-process run's); a
single-process node takes every file, as KumoMTA.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from time import gmtime, strftime, time_ns

from kumocore.logs.timestamps import chrono_fraction
from kumocore.logs.zstd_segment import WRITE_BITS, ZstdSegmentWriter
from kumocore.node.worker_env import worker_place

__all__ = ["Worker", "mark_leftovers_done", "open_segment", "segment_name"]

#: How many nanoseconds :func:`open_segment` moves on past names already taken.
NAME_TRIES = 1000
_TAGGED = re.compile(r"acct-\d{8}-\d{6}(?:\.\d+)?-w(\d+)")


@dataclass(frozen=True, slots=True)
class Worker:
    """This process's place among the node's ``--workers``."""

    index: int
    count: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Worker | None:
        """The worker this process is; None for a single-process node."""
        place = worker_place(env)
        return None if place is None else cls(*place)

    def owns_leftover(self, name: str) -> bool:
        """Whether this worker marks the leftover segment ``name`` done."""
        tagged = _TAGGED.fullmatch(name)
        if tagged is None:
            return self.index == 0
        writer = int(tagged[1])
        return writer == self.index or (writer >= self.count and writer % self.count == self.index)


def segment_name(unix_ns: int, worker: Worker | None = None) -> str:
    """The name of a segment opened at ``unix_ns`` (UTC) by ``worker``."""
    secs, nanos = divmod(unix_ns, 1_000_000_000)
    tag = "" if worker is None else f"-w{worker.index}"
    return "acct-" + strftime("%Y%m%d-%H%M%S", gmtime(secs)) + chrono_fraction(nanos) + tag


def open_segment(directory: Path, level: int, worker: Worker | None) -> ZstdSegmentWriter:
    """A new segment in ``directory`` named for now, one nanosecond on per name taken."""
    unix_ns = time_ns()
    for _ in range(NAME_TRIES):
        try:
            return ZstdSegmentWriter(directory / segment_name(unix_ns, worker), level)
        except FileExistsError:
            unix_ns += 1
    raise FileExistsError(f"no free accounting log segment name in {directory}")


def mark_leftovers_done(directory: Path, worker: Worker | None) -> list[Path]:
    """Clear the write bits of the writable segments in ``directory`` that this process
    owns (see the module's rule); a missing directory has none. The marked paths."""
    marked = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue
        if worker is not None and not worker.owns_leftover(entry.name):
            continue
        try:  # one file that cannot be marked (gone, not ours) does not stop the others
            mode = entry.stat(follow_symlinks=False).st_mode
            if mode & WRITE_BITS:
                os.chmod(entry.path, stat.S_IMODE(mode) & ~WRITE_BITS)
                marked.append(Path(entry.path))
        except OSError:
            continue
    return marked
