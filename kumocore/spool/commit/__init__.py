"""Group commit for spool kinds: one writer thread per event loop, in order.

Owns how spool writes reach the disk together: the writer thread, the commit cycle, the
order of a body and its commit marker across two spools, and the deletes that wait for
another spool's sync. It does not own any storage format; a spool plugin subclasses
:class:`GroupCommitSpool` and writes that part (``_write_batch``, the reads,
``_close_store``). The RocksDB and LMDB kinds are built on it.
"""

from __future__ import annotations

from kumocore.spool.commit.arrivals import Arrivals, Expected
from kumocore.spool.commit.committer import COMMIT_WINDOW, MAX_BATCH_BYTES, Committer
from kumocore.spool.commit.deferred import WAIT_BOUND
from kumocore.spool.commit.ops import CommitGroup, Step, Writable
from kumocore.spool.commit.spool import (
    GroupCommitSpool,
    committer_for,
    expect_write,
    take_chunk,
)

__all__ = [
    "COMMIT_WINDOW",
    "MAX_BATCH_BYTES",
    "WAIT_BOUND",
    "Arrivals",
    "CommitGroup",
    "Committer",
    "Expected",
    "GroupCommitSpool",
    "Step",
    "Writable",
    "committer_for",
    "expect_write",
    "take_chunk",
]
