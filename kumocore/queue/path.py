"""An egress path: one (egress source, site name) path, its ready queue and connections.

Domains whose MX hosts share a site name share one path, so its limits —
``connection_limit``, ``max_deliveries_per_connection``, ``max_message_rate`` — hold for all
of them together, as in KumoMTA. The path owns the messages due over it (``max_ready`` in
memory, the rest waiting with their bodies on disk) and its traffic shaping hold (both in
:mod:`kumocore.queue.path_queue`), its connection slots and rates
(:mod:`kumocore.queue.slots`) and its pause after failed connections
(:mod:`kumocore.queue.backoff`). It opens a connection task
per slot it gets; what a connection does is the delivery protocol's
:meth:`EgressPath.serve` — SMTP in :mod:`kumocore.queue.session`, ``custom_lua`` in
:mod:`kumocore.delivery.custom_lua`.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.mail.response import Response
from kumocore.node.memory import MEMORY
from kumocore.policy.refresh import Freshness
from kumocore.queue.backoff import PathBackoff
from kumocore.queue.batch_groups import BatchMemory
from kumocore.queue.dispatchers import Dispatchers
from kumocore.queue.path_queue import PathQueue
from kumocore.queue.slots import PathThrottles, Slot
from kumocore.queue.watchdog import Watchdog

if TYPE_CHECKING:
    from kumocore.config import EgressPathConfig, EgressSource
    from kumocore.mail.message import Message
    from kumocore.queue.egress import EgressShared, PathKey

log = structlog.get_logger("kumocore.ready")

#: How soon a path that found every connection slot taken (by another node) asks again.
SLOT_RETRY_SECONDS = 0.5


class EgressPath(PathQueue):
    """Messages due over one egress path, and the connections serving them."""

    def __init__(
        self,
        shared: EgressShared,
        key: PathKey,
        domain: str,
        source: EgressSource,
        config: EgressPathConfig,
        freshness: Freshness | None = None,
    ) -> None:
        self.shared = shared
        self.key = key
        self.domain = domain
        self.source = source
        self.config = config
        #: When ``config`` was asked for, to tell when to ask again (``refresh_strategy``).
        self.freshness = freshness or Freshness(0)
        self.messages: collections.deque[Message] = collections.deque()
        # Beyond max_ready, messages wait here with their bodies released to disk; they
        # move up as the queue drains, instead of waiting out a fixed reschedule delay.
        self.overflow: collections.deque[Message] = collections.deque()
        self.ready_full = 0
        self.connections = 0
        #: Connections (sessions) it opened since it was made (``total_connection_count``).
        self.connections_opened = 0
        #: The pool of the scheduled queue whose message opened it: its pool label in the
        #: provider metrics, as KumoMTA labels a ready queue (set by routing).
        self.pool: str | None = None
        self.mx: Any = None  # the MailExchanger of the domain that opened this path
        # What to connect to, in order (kumocore.dns.mx.MxTarget), and how: set by routing.
        self.targets: list[Any] = []
        self.protocol: Any = None
        self.throttles = PathThrottles(shared, key.name, self.wake)
        self.backoff = PathBackoff(key.name)
        # Connection rounds in a row in which no host could be reached (KumoMTA's
        # consecutive_connection_failures); a connection that opens resets it.
        self.connection_failures = 0
        # Held by a traffic shaping automation ``Suspend`` until this time (unix seconds).
        self.suspended_until = 0.0
        self._resume: asyncio.TimerHandle | None = None
        self._pumping = False
        # Set by stop(): a connection cancelled then puts its message back and ends, and
        # its wake() must not open another (it would deliver after the node stopped).
        self._stopping = False
        self._slot_retry: asyncio.TimerHandle | None = None
        #: Messages deferred in this pass of the loop (:data:`DEFER_BATCH`).
        self._deferred_in_pass = 0
        self._tasks: set[asyncio.Task[None]] = set()
        #: The running connection tasks by session id (inspect / abort-ready-q-conn).
        self.dispatchers = Dispatchers(key.name)
        #: Batches between their transactions (kumocore.queue.batch_send).
        self.batch_memory = BatchMemory()
        #: Aborts the connections that stop making progress (kumocore.queue.watchdog).
        self.watchdog = Watchdog(self)
        # A path opened while a Suspend or an operator suspension holds starts held.
        self.suspend_until(shared.held_until(key.name))

    # ------------------------------------------------------------------ connections
    def wake(self) -> None:
        """Open connections if there is work and the limit allows (never blocks)."""
        if not self.messages and not self.overflow:
            # Called as each connection ends and when a slot is retried: a queue that sent
            # everything is no longer held back by a limit it met (ready-q-states).
            self.throttles.states.clear()
        if self._pumping or self._stopping or not self.messages or self.suspended:
            return
        if self.backoff.active:
            self.backoff.call_when_over(self.wake)
            return
        self._pumping = True
        self.shared.counts.readyq_runs += 1  # a pass of the ready queue's maintenance
        self._spawn(self._pump())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump(self) -> None:
        try:
            while (
                self.messages
                and self.connections < self._wanted_connections()
                and not self.backoff.active
                and not self.suspended
            ):
                try:
                    slot = await self.throttles.acquire(self.config)
                except Exception as exc:
                    # A throttle store that fails (rather than reporting an outage) must
                    # not strand the queue: nothing else wakes it once arrivals stop.
                    log.warning(
                        "connection slot unavailable; retrying", path=self.key.name, error=str(exc)
                    )
                    slot = None
                if slot is None:
                    # At the (possibly fleet-wide) limit. Our own ending connections wake
                    # us, but slots held by other nodes free up silently: poll once later.
                    self._retry_slots_later()
                    break
                self.connections += 1
                self.connections_opened += 1
                self.shared.connections_opened[self.key.protocol_kind] += 1
                self._spawn(self._connection(slot))
        finally:
            self._pumping = False

    def _retry_slots_later(self) -> None:
        if self._slot_retry is None:
            self._slot_retry = asyncio.get_running_loop().call_later(
                SLOT_RETRY_SECONDS, self._retry_slots
            )

    def _retry_slots(self) -> None:
        self._slot_retry = None
        self.wake()

    def _wanted_connections(self) -> int:
        limit = self.connection_limit
        if self.backoff.failures:  # probing a failing MX: one connection until one works
            limit = 1
        elif MEMORY.over_limit:  # KumoMTA's ready queues open at most 2 while shedding
            limit = min(limit, 2)
        # No more connections than queued messages: a new connection has not taken its
        # first message yet, so the open ones already stand for that many queued ones.
        return min(limit, len(self.messages))

    async def _connection(self, slot: Slot) -> None:
        epoch = self.backoff.epoch
        dispatcher = self.dispatchers.enter()
        self.watchdog.watch()
        try:
            await self.serve(slot, epoch)
        except Exception as exc:  # a bug must not kill the queue: log and move on
            log.exception("connection task failed", path=self.key.name, error=str(exc))
            # ... nor make it reconnect in a tight loop
            self.backoff.failed(Response.parse(451, f"4.3.0 connection task failed: {exc}"), epoch)
        finally:
            self.dispatchers.leave(dispatcher)
            self.connections -= 1
            await self.throttles.release(slot)
            self.wake()

    async def serve(self, slot: Slot, epoch: int) -> None:
        """One connection's session, holding ``slot`` (opened in backoff ``epoch``): the
        delivery protocol's part (see the module docstring)."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Cancel the path's timers and connections (see :func:`stop_paths`)."""
        self._stopping = True
        self.backoff.cancel()
        self.watchdog.cancel()
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self._slot_retry is not None:
            self._slot_retry.cancel()
            self._slot_retry = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def stop_paths(paths: list[EgressPath], timeout: float) -> None:
    """Shutdown: queued messages stay spooled for the next start; deliveries in flight
    get until their path's ``system_shutdown_timeout`` (KumoMTA's), all of them at most
    ``timeout`` seconds."""
    started = time.monotonic()
    deadline = started + timeout
    for path in paths:
        path.drain()

    def until(path: EgressPath) -> float:
        own = path.config.system_shutdown_timeout
        return deadline if own is None else min(deadline, started + float(own))

    while any(p.connections and time.monotonic() < until(p) for p in paths):
        await asyncio.sleep(0.05)
    await asyncio.gather(*(p.stop() for p in paths))
