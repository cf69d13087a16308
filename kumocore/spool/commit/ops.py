"""What the committer writes: a spool as it sees one, and the ops and steps of a cycle.

Kept apart from :mod:`.cycle` and :mod:`.deferred`, which both speak of them.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["After", "Op", "Step", "Writable"]


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
