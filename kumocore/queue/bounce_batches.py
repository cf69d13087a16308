"""Admin bounces logged and removed from the spool in batches, by one task.

An admin bounce rule bounces every matching queued message at once, and each bounced
message has its final record (``AdminBounce``) written before it leaves the spool. Each
used to get a task of its own for that (classify, log, wait for the record, delete), and
100,000 of them held the event loop 0.1-0.3 s at a time: a log batch written woke its
1,000 waiters in one turn of the loop, a spool commit cycle all of its deletes (one turn
ran 1,500-2,400 task steps, 100-250 ms), and the tasks' frames, futures and cells (about
30 objects each, tens of thousands alive at once) made the collector's passes 60-110 ms.

Here the bounced messages wait in one queue, and one task works through it a slice of
:data:`~kumocore.node.stepwise.SLICE_SECONDS` at a time. It classifies and logs them in
order; once every sink has written a slice's records (each sink writes its records in
order, so the slices are done in order too), it lets go of that slice's messages and
removes them from the spool as one write
(:meth:`~kumocore.spool.store.MessageStore.remove_many`). The guarantee is that of every
final outcome (:mod:`kumocore.queue.outcomes`): a message leaves the spool only once its
record is written, and one whose record cannot be written before the node stops stays
spooled, to be handled again at the next start.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.logs.dispatch import LogDispatcher
from kumocore.node.stepwise import SLICE_SECONDS

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from kumocore.logs.dispatch import Ticket
    from kumocore.logs.lane import Lane
    from kumocore.mail.message import Message
    from kumocore.mail.response import Response

__all__ = ["BounceBatches"]

log = structlog.get_logger("kumocore.outcomes")


class BounceBatches:
    """The queue of admin-bounced messages on their way out, and the one task that
    empties it (started when the first message comes, done when the queue is empty).

    ``classify`` and ``record`` make a message's record (the outcomes' own), and
    ``written(ticket)`` waits until every sink wrote it (False: it will not be, the node
    stops); ``let_go`` drops a finished message from the queues; ``unspool`` removes a
    list of them from the spool; ``spawn`` starts (and tracks, for the shutdown's
    drain) a task.

    Nothing is allocated per message that outlives its turn: the messages wait in runs
    that share a response (a rule's), and each slice's logged messages wait under one
    ticket, every sink's last sequence number in it (their records' tickets are
    dropped), so a backlog of 100,000 is a few lists, not 300,000 young objects for the
    collector to walk again and again."""

    def __init__(
        self,
        *,
        classify: Callable[[Response], Awaitable[str]],
        record: Callable[[Message, Response, str], Ticket | None],
        written: Callable[[Ticket], Awaitable[bool]],
        let_go: Callable[[Message], None],
        unspool: Callable[[list[str]], Awaitable[None]],
        spawn: Callable[[Any], None],
    ) -> None:
        self._classify, self._record, self._written = classify, record, written
        self._let_go, self._unspool, self._spawn = let_go, unspool, spawn
        #: Bounced, not logged yet: runs of messages with one response and whether to
        #: log them.
        self._to_log: deque[tuple[Response, bool, deque[Message]]] = deque()
        #: Logged (or not to be), in order: each slice's messages and one ticket for
        #: their records (empty: nothing to wait for).
        self._logged: deque[tuple[list[Message], Ticket]] = deque()
        self._pending = 0
        self._running = False

    def __len__(self) -> int:
        """Messages bounced and not let go of yet."""
        return self._pending

    def add(self, message: Message, response: Response, log_it: bool) -> None:
        """Log ``message`` (unless not ``log_it``) and then forget it, in its turn."""
        runs = self._to_log
        if runs and runs[-1][1] == log_it and runs[-1][0] == response:  # a rule's, mostly
            runs[-1][2].append(message)
        else:
            runs.append((response, log_it, deque((message,))))
        self._pending += 1
        if not self._running:
            self._running = True
            self._spawn(self._run())

    async def _run(self) -> None:
        try:
            while self._to_log or self._logged:
                until = time.monotonic() + SLICE_SECONDS
                await self._log_some(until)
                finished = self._finish_written(until)
                if self._to_log or finished:
                    await asyncio.sleep(0)  # the loop's other clients, and the sinks
                elif self._logged:
                    await self._wait_for_sinks()
        finally:
            self._running = False

    async def _log_some(self, until: float) -> None:
        """Classify and log bounced messages, in order, until ``until`` (one at least);
        they wait as one slice, under every sink's last sequence number among them."""
        runs = self._to_log
        messages: list[Message] = []
        last: dict[Lane, int] = {}  # each sink's lane: the last sequence number
        taken = 0
        while runs and not (taken and time.monotonic() >= until):
            taken += 1
            response, log_it, run = runs[0]
            message = run.popleft()
            if not run:
                runs.popleft()
            try:
                if log_it:
                    classification = await self._classify(response)
                    for lane, sequence in self._record(message, response, classification) or ():
                        last[lane] = max(last.get(lane, 0), sequence)
            except Exception as exc:  # as a task of its own would: it stays as it is
                self._pending -= 1
                log.error("admin bounce not logged; the message stays spooled",
                          id=message.id, error=str(exc))  # fmt: skip
                continue
            messages.append(message)
        if messages:
            self._logged.append((messages, list(last.items())))

    def _finish_written(self, until: float) -> bool:
        """Let go of the logged slices whose records are written, in order, until
        ``until`` (one at least), and remove their messages from the spool as one write."""
        logged = self._logged
        done: list[str] = []
        while logged:
            messages, ticket = logged[0]
            if ticket and not LogDispatcher.is_written(ticket):
                break
            logged.popleft()
            done.extend(self._let_all_go(messages))
            if time.monotonic() >= until:
                break
        if done:
            self._spawn(self._remove(done))
        return bool(done)

    def _let_all_go(self, messages: list[Message]) -> list[str]:
        for message in messages:
            self._let_go(message)
        self._pending -= len(messages)
        return [message.id for message in messages]

    async def _wait_for_sinks(self) -> None:
        """Nothing to log, nothing written: wait for the first slice's records. If the
        node stops before they are written, the messages whose records are not written
        are let go of but stay spooled (logged twice rather than never)."""
        _, ticket = self._logged[0]
        if await self._written(ticket):
            return
        kept: list[str] = []
        done: list[str] = []
        while self._logged:
            messages, ticket = self._logged.popleft()
            ids = self._let_all_go(messages)
            if ticket and not LogDispatcher.is_written(ticket):
                kept.extend(ids)
            else:
                done.extend(ids)
        if done:
            self._spawn(self._remove(done))
        log.warning("log records not written at shutdown; messages stay spooled",
                    count=len(kept), ids=kept[:10])

    async def _remove(self, message_ids: list[str]) -> None:
        try:
            await self._unspool(message_ids)
        except Exception as exc:  # the spool's own error path reopens it; they come back
            log.error("bounced messages not removed from the spool", count=len(message_ids),
                      ids=message_ids[:10], error=str(exc))  # fmt: skip
