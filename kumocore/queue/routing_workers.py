"""The routing workers: the tasks that take due messages to their ready queues.

A due message's id joins one line (:meth:`RoutingWorkers.route_now`); :data:`ROUTING_WORKERS`
tasks take ids from it and route each message (:class:`~kumocore.queue.routing.Router`).
A message the queue manager no longer owns when its turn comes is skipped.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import structlog

from kumocore.mail import internal_responses

if TYPE_CHECKING:
    from kumocore.mail.message import Message
    from kumocore.queue.outcomes import Outcomes
    from kumocore.queue.queued import Queued
    from kumocore.queue.routing import Router
    from kumocore.queue.schedule import ScheduledQueue

__all__ = ["ROUTING_BATCH", "ROUTING_WORKERS", "RoutingOwner", "RoutingWorkers"]

log = structlog.get_logger("kumocore.queue")

ROUTING_WORKERS = 16

#: The routing workers together route at most this many messages per pass of the event
#: loop. A message that is only logged and rescheduled (a suspended queue, an expiry, a
#: queue rate) never waits for anything, so 50,000 of them coming due together would
#: otherwise be routed in one pass, stalling every connection of the node for seconds.
ROUTING_BATCH = 32


class RoutingOwner(Protocol):
    """What the routing workers need of the queue manager."""

    @property
    def router(self) -> Router: ...

    @property
    def outcomes(self) -> Outcomes: ...

    @property
    def queued(self) -> Mapping[str, Queued]: ...

    def queue_of(self, message: Message) -> ScheduledQueue | None: ...


class RoutingWorkers:
    """The line of due message ids and the tasks that route them."""

    def __init__(self, owner: RoutingOwner) -> None:
        self.owner = owner
        self._line: collections.deque[str] = collections.deque()
        self._ready = asyncio.Event()
        #: Messages routed in this pass of the loop (:data:`ROUTING_BATCH`).
        self._routed_in_pass = 0
        self._pass_ending = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._work(), name=f"router-{n}") for n in range(ROUTING_WORKERS)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def route_now(self, message_id: str) -> None:
        """Queue ``message_id`` for routing (it is due)."""
        self._line.append(message_id)
        self._ready.set()

    def clear(self) -> None:
        """Forget the ids waiting for a worker (their messages stay owned)."""
        self._line.clear()

    def __len__(self) -> int:
        return len(self._line)

    def _end_pass(self) -> None:
        self._routed_in_pass = 0
        self._pass_ending = False

    async def _work(self) -> None:
        while True:
            if not self._line:
                self._ready.clear()
                await self._ready.wait()
                continue
            if self._routed_in_pass >= ROUTING_BATCH:
                # This pass's share is routed: every worker waits for the next pass (the
                # count starts over there, before any of them resumes).
                if not self._pass_ending:
                    self._pass_ending = True
                    asyncio.get_running_loop().call_soon(self._end_pass)
                await asyncio.sleep(0)
                continue
            self._routed_in_pass += 1
            record = self.owner.queued.get(self._line.popleft())
            if record is not None:
                await self._route(record.message)

    async def _route(self, message: Message) -> None:
        owner = self.owner
        try:
            await owner.router.route(message)
        except Exception as exc:  # a policy error in a lookup: keep it queued
            log.error("routing failed; message stays queued", id=message.id, error=str(exc))
            try:
                queue = owner.queue_of(message)
                name = message.queue_name() if queue is None else queue.name
                response = internal_responses.queue_unresolved(name, str(exc))
                owner.outcomes.handle(None, message, response, peer=None)
            except Exception as again:  # never let one bad message stop a worker
                log.exception("could not reschedule message", id=message.id, error=str(again))
