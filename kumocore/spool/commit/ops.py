"""What the committer writes: a spool as it sees one, and the ops and steps of a cycle.

Kept apart from :mod:`.cycle` and :mod:`.deferred`, which both speak of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["After", "CommitGroup", "Op", "Step", "Writable"]


class Writable(Protocol):
    """A spool as the committer sees it: a name and a way to write a batch of ops."""

    name: str

    def _write(self, ops: list[tuple[bytes, bytes | None]], sync: bool) -> None:
        """On the writer thread: write ``ops`` (a None value deletes) as one batch, then
        make everything written so far durable if ``sync``."""
        ...


# (the spool, key, value or None for a delete)
Op = tuple[Writable, bytes, bytes | None]
# (the spool whose sync the op waits for, the op)
After = tuple[Writable, Op]
# (the spool, its ops in order, whether to sync it after writing them)
Step = tuple[Writable, list[tuple[bytes, bytes | None]], bool]


class CommitGroup(Protocol):
    """Spools that can write their steps of one cycle as a single atomic, durable batch
    (spools sharing one storage environment, such as two LMDB spools at one path).

    A spool belongs to one by its ``commit_group`` attribute. A cycle hands the steps of
    spools that are next to each other in writing order and share a group to that group
    at once: their order then needs no sync between them, since nothing of the batch
    reaches the disk without the rest."""

    def write_together(self, steps: Sequence[Step]) -> bool:
        """On the writer thread: write every step's ops as one atomic batch, synced if any
        step asks for a sync. True if everything written to these spools so far is now
        durable; False if nothing was written (deletes held for a later batch)."""
        ...
