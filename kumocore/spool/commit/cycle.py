"""One commit cycle: what the writer thread writes, syncs and hands back at once.

A :class:`Ticket` is one caller's writes: ``ops``, written in this cycle (a put makes its
spool sync), and ``after``, writes that wait until a given spool has synced everything
written to it so far (see :mod:`.deferred`).

A cycle writes each spool's ops as one step, in writing order. Neighbouring steps of
spools that share a :class:`~.ops.CommitGroup` (two LMDB spools in one environment) are
handed to the group at once and written as one atomic batch with one sync.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Iterator, Sequence

from kumocore.spool.commit.deferred import Deferred
from kumocore.spool.commit.ops import After, CommitGroup, Op, Step, Writable

__all__ = ["Cycle", "Ticket"]


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

    def writes_to(self, spools: Collection[Writable]) -> bool:
        return any(op[0] in spools for op in self.ops)


class Cycle:
    """The tickets of one hand-over, and the spools' ops in writing order."""

    __slots__ = ("deferred", "failure", "force", "now", "steps", "tickets", "unwritten")

    def __init__(self, tickets: list[Ticket], order: list[Writable], deferred: Deferred,
                 now: float) -> None:
        self.tickets = tickets
        self.deferred = deferred
        self.now = now
        self.force = any(ticket.force for ticket in tickets)
        deferred.forget_all_but(order)
        by_spool = _by_spool(deferred.take_ready())
        synced: set[Writable] = set()  # spools that must be synced in this cycle
        for ticket in tickets:
            _by_spool(ticket.ops, by_spool)
            synced.update(spool for spool, _, value in ticket.ops if value is not None)
        for spool in order:
            if deferred.due(spool, now, self.force):
                by_spool.setdefault(spool, [])
                synced.add(spool)
        rank = {spool: index for index, spool in enumerate(order)}
        ordered = sorted(by_spool.items(), key=lambda item: rank.get(item[0], len(rank)))
        self.steps = [(spool, ops, spool in synced) for spool, ops in ordered]
        self.failure: BaseException | None = None
        self.unwritten: frozenset[Writable] = frozenset()  # from the step that failed on

    def run(self) -> None:
        """On the writer thread: each spool's batch in order, stopping at a failure; then
        the tickets' waiting writes, and (when closing) what they released."""
        written = self._write_steps(self.steps)
        for ticket in self.tickets:
            if not ticket.writes_to(self.unwritten):
                for spool, op in ticket.after:
                    self.deferred.wait_for(spool, op)
        if written and self.force:  # a closing spool: what waited is written before it closes
            ready = _by_spool(self.deferred.take_ready())
            self._write_steps([(spool, ops, False) for spool, ops in ready.items()])

    def _write_steps(self, steps: list[Step]) -> bool:
        for index, together in _together(steps):
            try:
                synced = _write(together)
            except BaseException as exc:  # every caller must hear of it, whatever it is
                names = "+".join(spool.name for spool, _, _ in together)
                self.failure = exc if isinstance(exc, Exception) else RuntimeError(
                    f"spool {names!r}: commit failed: {exc!r}")
                for spool, _, _ in together:
                    self.deferred.drop(spool)
                if steps is self.steps:
                    self.unwritten = frozenset(step[0] for step in steps[index:])
                return False
            for spool, ops, _ in together:
                self.deferred.wrote(spool, synced=synced, wrote_any=bool(ops), now=self.now)
        return True

    def settle(self, start: int = 0, stop: int | None = None) -> None:
        """On the loop: a ticket succeeded if every spool it wrote to was written (a
        closing ticket: if everything it flushed was written too). ``start``/``stop``:
        only those tickets (the committer settles a large cycle a slice a turn)."""
        for ticket in self.tickets[start:stop]:
            if ticket.future.done():  # its caller was cancelled
                continue
            if self.failure is not None and (ticket.force or ticket.writes_to(self.unwritten)):
                ticket.future.set_exception(self.failure)
            else:
                ticket.future.set_result(None)


def _together(steps: list[Step]) -> Iterator[tuple[int, list[Step]]]:
    """``steps`` in runs written as one batch, each with the index of its first step: a
    run is one step, or the steps of neighbouring spools of one commit group."""
    index = 0
    while index < len(steps):
        group = _group_of(steps[index][0])
        end = index + 1
        while group is not None and end < len(steps) and _group_of(steps[end][0]) is group:
            end += 1
        yield index, steps[index:end]
        index = end


def _group_of(spool: Writable) -> CommitGroup | None:
    group: CommitGroup | None = getattr(spool, "commit_group", None)
    return group


def _write(together: list[Step]) -> bool:
    """Write one run of steps; whether everything its spools hold is synced after it."""
    if len(together) == 1:
        spool, ops, sync = together[0]
        spool._write(ops, sync)
        return sync
    group = _group_of(together[0][0])
    assert group is not None  # a run of several steps is a group's
    return group.write_together(together)


def _by_spool(ops: Iterable[Op], into: dict[Writable, list[tuple[bytes, bytes | None]]]
              | None = None) -> dict[Writable, list[tuple[bytes, bytes | None]]]:
    """``ops`` grouped by spool, in order, added to ``into`` (a new dict by default)."""
    by_spool = {} if into is None else into
    for spool, key, value in ops:
        by_spool.setdefault(spool, []).append((key, value))
    return by_spool
