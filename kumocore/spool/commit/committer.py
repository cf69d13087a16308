"""One writer thread per event loop for all of its group-commit spools, in order.

A message is made durable by two records, its body in the ``data`` spool and then its
envelope in the ``meta`` spool, the commit marker: the meta record must never reach the
disk before the body is synced. With a writer thread per spool that order costs two
hand-overs and two commit cycles per message, one after the other. Here every spool of a
loop hands its writes to one :class:`Committer`, and a *ticket* may carry writes to several
spools. Each cycle writes the spools one after the other, in an order that puts the first
spool of every :meth:`Committer.order` pair before the second, each as one
WriteBatch followed by one WAL sync: a pair's second record is written only after its
first is synced, in the same cycle, with one hand-over. Two spools of one commit group
(two LMDB spools in one environment) write a cycle as one atomic batch with one sync
instead (:class:`~.ops.CommitGroup`). Within one spool the writes keep the order they
were submitted in.

The cycle is the group commit: the loop queues tickets to the thread, which takes
everything queued (up to :data:`MAX_BATCH_BYTES`) as one cycle; what arrives while a cycle
is written goes in the next, which the thread starts as soon as it has handed the last
one back, so the batch grows with the load by itself. The first ticket after an idle
spell waits :data:`COMMIT_WINDOW` (1 ms) for company (docs/performance.md, sixth to
eighth rounds), or less: only until the bodies that reception announced have arrived
(:mod:`.arrivals`, twelfth round). A spool that fails its write fails every ticket not
yet fully written in that cycle; nothing of a ticket is written after one of its spools
failed.

A ticket may also carry writes that wait for another spool's sync (a body's delete waits
for its marker's, :mod:`.deferred`); between tickets, the thread wakes up for those alone
when they fall due.

A cycle comes back to the loop as one callback, and each ticket it settles wakes the task
that waits for it. A cycle of a bulk operation (the reschedules of thousands of messages
an admin rebind made due) would wake thousands of tasks in one turn of the loop, and every
other client would wait for all of them: so the tickets are settled
:data:`SETTLE_PER_TURN` a turn, cycles in the order they were written.
"""

from __future__ import annotations

import asyncio
import collections
import queue
import threading
import time
from collections.abc import Sequence

from kumocore.spool.commit.arrivals import Arrivals
from kumocore.spool.commit.cycle import Cycle, Ticket
from kumocore.spool.commit.deferred import Deferred
from kumocore.spool.commit.ops import After, Op, Writable
from kumocore.spool.commit.writer_thread import run_as_batch, waits_for_the_loop

__all__ = ["COMMIT_WINDOW", "MAX_BATCH_BYTES", "Committer", "Writable"]

#: Seconds the first write after an idle spell waits at most for others to share its sync.
COMMIT_WINDOW = 0.001
#: One cycle takes at most this much; the rest waits for the next. Bounds the time the
#: writer holds the GIL inserting into memtables, and so the loop's latency.
MAX_BATCH_BYTES = 8 * 1024 * 1024
#: While writes are outstanding, no cycle has come back for this long and the thread
#: waits for the GIL, the loop...
HANDOVER_AFTER = 0.005
#: ...sleeps this long, so that the thread can take it (see Committer._hand_over).
HANDOVER_SLEEP = 0.0001
#: Tickets settled (tasks woken) per turn of the loop; under load a cycle holds a few.
SETTLE_PER_TURN = 64


class Committer:
    """The writer thread and group commit shared by the group-commit spools of one loop."""

    def __init__(self) -> None:
        self._order: list[Writable] = []  # spools in writing order
        self._before: set[tuple[Writable, Writable]] = set()  # (first, second) pairs
        self._inbox: queue.SimpleQueue[Ticket | None] = queue.SimpleQueue()
        self._outstanding = 0  # tickets submitted and not yet settled
        self._watching = False  # the hand-over watch is armed
        self._idle: list[asyncio.Future[None]] = []
        # Cycles written and not yet wholly settled, oldest first, and how many tickets of
        # the oldest are settled.
        self._settling: collections.deque[Cycle] = collections.deque()
        self._settled = 0
        # Started with the first write: a spool opened and only read, or opened before a
        # fork, has no thread.
        self._thread: threading.Thread | None = None
        #: Cycles handed back to the loop: one hand-over and at most one sync per spool each.
        self.cycles = 0
        #: Bodies on their way (announced by reception): they close the window early.
        self.arrivals = Arrivals()

    # ------------------------------------------------------------------ spools

    def register(self, spool: Writable) -> None:
        if spool not in self._order:
            self._order = [*self._order, spool]  # a new list: the thread may be reading

    def unregister(self, spool: Writable) -> bool:
        """Forget ``spool``; True when no spool is left (the caller then stops the thread)."""
        self._order = [known for known in self._order if known is not spool]
        self._before = {pair for pair in self._before if spool not in pair}
        return not self._order

    def order(self, first: Writable, second: Writable) -> bool:
        """Write ``first`` before ``second`` in every cycle from now on; False if another
        pair already asks for the opposite (the caller then writes them one by one)."""
        if (first, second) in self._before:
            return True
        self.register(first)
        self.register(second)
        order = list(self._order)
        if order.index(first) > order.index(second):
            order.remove(first)
            order.insert(order.index(second), first)
        pairs = self._before | {(first, second)}
        if any(order.index(a) > order.index(b) for a, b in pairs):
            return False  # the pairs so far ask for another order
        self._order, self._before = order, pairs
        return True

    # ------------------------------------------------------------------ writes

    def submit(self, ops: Sequence[Op], *, after: Sequence[After] = ()) -> asyncio.Future[None]:
        """Queue one ticket; its future resolves once every op in it is on disk (and each
        ``after`` op is left to wait for its spool's sync, :class:`~.cycle.Ticket`)."""
        loop = asyncio.get_running_loop()
        return self._queue(Ticket(ops, loop.create_future(), after=after), loop)

    async def flush(self) -> None:
        """Sync every spool that writes wait on and write those (before a spool closes)."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            loop = asyncio.get_running_loop()
            await self._queue(Ticket((), loop.create_future(), force=True), loop)

    def _queue(self, ticket: Ticket, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        thread = self._thread
        if thread is None or not thread.is_alive():
            thread = self._thread = threading.Thread(
                target=self._run, args=(self._inbox, loop), name="spool-commit",
                daemon=True)
            thread.start()
        self._outstanding += 1
        self._inbox.put(ticket)
        if not self._watching:
            self._watching = True
            loop.call_later(HANDOVER_AFTER, self._hand_over, loop, self.cycles)
        return ticket.future

    def _hand_over(self, loop: asyncio.AbstractEventLoop, cycles_before: int) -> None:
        """On the loop, every HANDOVER_AFTER while tickets are outstanding: if no cycle
        came back meanwhile, let the thread have the GIL (and the CPU) if it waits for them.

        A loop that never waits starves the writer thread (CPython 3.11): the loop drops
        the GIL around every poll, which wakes the waiting thread and restarts its 5 ms
        wait before it would ask for a switch, and takes it back before that thread runs;
        and a batch thread woken on the loop's CPU also waits for that CPU. A cycle needs
        the GIL twice or three times, so while one client pipelined commands every other
        client's ``250`` waited 30-450 ms. A 0.1 ms sleep hands both over. It is skipped
        while the thread is in ``fdatasync`` and not needed while cycles come back in time
        (docs/reliability.md; docs/performance.md, seventh round)."""
        if not self._outstanding:
            self._watching = False
            return
        if self.cycles == cycles_before and waits_for_the_loop(self._thread):
            time.sleep(HANDOVER_SLEEP)
        loop.call_later(HANDOVER_AFTER, self._hand_over, loop, self.cycles)

    def _run(self, inbox: queue.SimpleQueue[Ticket | None],
             loop: asyncio.AbstractEventLoop) -> None:
        """The writer thread: take what is queued, write it as one cycle, hand it back to
        the loop, and go on with what arrived meanwhile without waiting for the loop.

        Taking the next batch here rather than on the loop saves a hand-over per cycle:
        the thread already holds the GIL after its last sync, so under load a cycle needs
        the GIL twice (after each sync) instead of three times, and the next cycle does
        not wait for the loop to notice the last one (docs/performance.md, eighth round).
        """
        run_as_batch()
        deferred = Deferred()
        arrivals = self.arrivals
        arrived = arrivals.total_arrived  # announced bodies arrived before the last cycle
        stopping, idle = False, True  # a new thread is idle: its first ticket waits too
        while not stopping:
            # Only this thread takes from the inbox: what it saw there is still there.
            if idle or inbox.empty():
                try:  # idle: the first ticket waits for company
                    first = inbox.get(timeout=deferred.next_due(time.monotonic()))
                except queue.Empty:  # no ticket, but a waiting write (or its sync) is due
                    Cycle([], self._order, deferred, time.monotonic()).run()
                    continue
                if first is not None:
                    arrivals.wait_for_company(COMMIT_WINDOW, arrived)
            else:
                first = inbox.get_nowait()
            idle = False
            if first is None:
                return
            arrived = arrivals.total_arrived
            tickets, stopping = _take_more(inbox, first)
            cycle = Cycle(tickets, self._order, deferred, time.monotonic())
            cycle.run()
            try:
                loop.call_soon_threadsafe(self._written, cycle)
            except RuntimeError:  # the loop is closed: nobody is left waiting
                return

    def _written(self, cycle: Cycle) -> None:
        """On the loop: a cycle is on disk (or failed)."""
        self.cycles += 1
        self._settling.append(cycle)
        if len(self._settling) == 1:  # else a turn to come settles it after the others
            self._settle_some()

    def _settle_some(self) -> None:
        """Settle :data:`SETTLE_PER_TURN` tickets of the oldest cycle; the rest in a turn
        of the loop to come."""
        cycle = self._settling[0]
        start, stop = self._settled, self._settled + SETTLE_PER_TURN
        cycle.settle(start, stop)
        if stop < len(cycle.tickets):
            self._settled = stop
        else:
            self._settling.popleft()
            self._settled = 0
            self._outstanding -= len(cycle.tickets)
            if not self._outstanding:
                idle, self._idle = self._idle, []
                for waiter in idle:
                    if not waiter.done():
                        waiter.set_result(None)
        if self._settling:
            asyncio.get_running_loop().call_soon(self._settle_some)

    # ------------------------------------------------------------------ lifecycle

    async def drained(self) -> None:
        """Wait until every ticket submitted so far is on disk (or failed)."""
        if self._outstanding:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            await asyncio.shield(waiter)

    async def stop(self) -> None:
        """Stop the thread (once no spool is left); a later write starts a new one."""
        thread, inbox = self._thread, self._inbox
        if thread is None or not thread.is_alive():
            return
        # A new thread, if a spool writes meanwhile, gets a queue of its own.
        self._thread, self._inbox = None, queue.SimpleQueue()
        inbox.put(None)
        await asyncio.get_running_loop().run_in_executor(None, thread.join)


def _take_more(inbox: queue.SimpleQueue[Ticket | None],
               first: Ticket) -> tuple[list[Ticket], bool]:
    """On the thread: ``first`` and what else is queued, up to MAX_BATCH_BYTES; and whether
    the stop marker came next (the thread then ends after this cycle)."""
    tickets, size = [first], first.size
    while size < MAX_BATCH_BYTES:
        try:
            ticket = inbox.get_nowait()
        except queue.Empty:
            break
        if ticket is None:
            return tickets, True
        tickets.append(ticket)
        size += ticket.size
    return tickets, False
