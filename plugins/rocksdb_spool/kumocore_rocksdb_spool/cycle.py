"""One commit cycle: what the writer thread writes, syncs and hands back at once.

A :class:`Ticket` is one caller's writes: ``ops``, written in this cycle (a put makes its
spool sync), and ``after``, writes that wait until a given spool has synced everything
written to it so far (see :mod:`.deferred`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from kumocore_rocksdb_spool.deferred import Deferred

__all__ = ["After", "Cycle", "Op", "Step", "Ticket", "Writable"]


class Writable(Protocol):
    """A spool as the committer sees it: a name and a way to write a batch of ops."""

    name: str

    def _write(self, ops: list[tuple[bytes, bytes | None]], sync: bool) -> None:
        """On the writer thread: write ``ops`` (a None value deletes) as one batch, then
        sync the WAL if ``sync``."""
        ...


# (the spool, key, value or None for a delete)
Op = tuple[Writable, bytes, bytes | None]
# (the spool whose sync the op waits for, the op)
After = tuple[Writable, Op]
# (the spool, its ops in order, whether to sync its WAL after writing them)
Step = tuple[Writable, list[tuple[bytes, bytes | None]], bool]


class Ticket:
    """One caller's writes and the future it waits on (see the module's doc)."""

    __slots__ = ("after", "force", "future", "ops", "size")

    def __init__(self, ops: Sequence[Op], future: asyncio.Future[None], *,
                 after: Sequence[After] = (), force: bool = False) -> None:
        self.ops = ops
        self.after = after
        self.force = force  # sync whatever is owed and write what waits (closing)
        self.future = future
        self.size = sum(len(key) + (len(value) if value else 0) for _, key, value in ops)

    def spools(self) -> set[Writable]:
        return {op[0] for op in self.ops}


class Cycle:
    """The tickets of one hand-over, and the spools' ops in writing order."""

    __slots__ = ("deferred", "failed_at", "failure", "force", "now", "steps", "tickets")

    def __init__(self, tickets: list[Ticket], order: list[Writable], deferred: Deferred,
                 now: float) -> None:
        self.tickets = tickets
        self.deferred = deferred
        self.now = now
        self.force = any(ticket.force for ticket in tickets)
        deferred.forget_all_but(order)
        by_spool: dict[Writable, list[tuple[bytes, bytes | None]]] = {}
        synced: set[Writable] = set()  # spools that must be synced in this cycle
        for spool, key, value in deferred.take_ready():
            by_spool.setdefault(spool, []).append((key, value))
        for ticket in tickets:
            for spool, key, value in ticket.ops:
                by_spool.setdefault(spool, []).append((key, value))
                if value is not None:
                    synced.add(spool)
        for spool in order:
            if deferred.due(spool, now, self.force):
                by_spool.setdefault(spool, [])
                synced.add(spool)
        rank = {spool: index for index, spool in enumerate(order)}
        ordered = sorted(by_spool.items(), key=lambda item: rank.get(item[0], len(rank)))
        self.steps = [(spool, ops, spool in synced) for spool, ops in ordered]
        self.failure: BaseException | None = None
        self.failed_at = len(self.steps)  # index of the step that failed

    def run(self) -> None:
        """On the writer thread: each spool's batch in order, stopping at a failure; then
        the tickets' waiting writes, and (when closing) what they released."""
        written = self._write_steps(self.steps)
        unwritten = {step[0] for step in self.steps[self.failed_at:]}
        for ticket in self.tickets:
            if ticket.spools().isdisjoint(unwritten):
                for spool, op in ticket.after:
                    self.deferred.wait_for(spool, op)
        if written and self.force:  # a closing spool: what waited is written before it closes
            ready: dict[Writable, list[tuple[bytes, bytes | None]]] = {}
            for spool, key, value in self.deferred.take_ready():
                ready.setdefault(spool, []).append((key, value))
            self._write_steps([(spool, ops, False) for spool, ops in ready.items()])

    def _write_steps(self, steps: list[Step]) -> bool:
        for index, (spool, ops, sync) in enumerate(steps):
            try:
                spool._write(ops, sync)
            except BaseException as exc:  # every caller must hear of it, whatever it is
                self.failure = exc if isinstance(exc, Exception) else RuntimeError(
                    f"spool {spool.name!r}: commit failed: {exc!r}")
                self.deferred.failed(spool)
                if steps is self.steps:
                    self.failed_at = index
                return False
            self.deferred.wrote(spool, synced=sync, wrote_any=bool(ops), now=self.now)
        return True

    def settle(self) -> None:
        """On the loop: a ticket succeeded if every spool it wrote to was written (a
        closing ticket: if everything it flushed was written too)."""
        unwritten = {step[0] for step in self.steps[self.failed_at:]}
        for ticket in self.tickets:
            if ticket.future.done():  # its caller was cancelled
                continue
            failed = ticket.force or not ticket.spools().isdisjoint(unwritten)
            if self.failure is not None and failed:
                ticket.future.set_exception(self.failure)
            else:
                ticket.future.set_result(None)
