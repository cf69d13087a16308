"""An egress path: one (egress source, site name) path, its ready queue and connections.

Domains whose MX hosts share a site name share one path, so its limits —
``connection_limit``, ``max_deliveries_per_connection``, ``max_message_rate`` — hold for all
of them together, as in KumoMTA. The path owns the messages due over it (``max_ready`` in
memory, the rest waiting with their bodies on disk), its connection slots and rates
(:mod:`kumocore.queue.slots`), its pause after failed connections
(:mod:`kumocore.queue.backoff`) and its traffic shaping hold. It opens a connection task
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

from kumocore.mail.internal_responses import queue_suspended
from kumocore.mail.response import Response
from kumocore.node.memory import MEMORY
from kumocore.policy.refresh import Freshness
from kumocore.queue import pressure
from kumocore.queue.backoff import PathBackoff
from kumocore.queue.dispatchers import Dispatchers
from kumocore.queue.dispatchers import current as current_dispatcher
from kumocore.queue.slots import YIELD_CHECK_SECONDS, PathThrottles, Slot
from kumocore.spool.health import HOLD

#: Added to a hold's remaining time when its resume timer is armed, so that the timer
#: does not run before the hold is over by the wall clock.
RESUME_MARGIN = 0.005

if TYPE_CHECKING:
    from kumocore.config import EgressPathConfig, EgressSource
    from kumocore.mail.message import Message
    from kumocore.queue.admin import AdminRules
    from kumocore.queue.egress import EgressShared, PathKey

log = structlog.get_logger("kumocore.ready")

#: How soon a path that found every connection slot taken (by another node) asks again.
SLOT_RETRY_SECONDS = 0.5

#: The most messages of suspended scheduled queues the connections of a path defer
#: (:meth:`EgressPath.take`) in one pass of the event loop: a ready queue of 50,000 whose
#: scheduled queue was suspended would otherwise be logged and rescheduled in one go.
DEFER_BATCH = 32


class EgressPath:
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
        self.connections = 0
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
        # A path opened while a Suspend or an operator suspension holds starts held.
        self.suspend_until(shared.held_until(key.name))

    # ------------------------------------------------------------------ the ready queue
    def __len__(self) -> int:
        return len(self.messages) + len(self.overflow)

    @property
    def is_full(self) -> bool:
        return len(self.messages) >= self.config.max_ready

    @property
    def connection_limit(self) -> int:
        return int(self.config.connection_limit.limit)

    def add(self, message: Message) -> None:
        if HOLD.active and self.held_for_spool(message, None):
            return  # KumoMTA's insert_ready defers it while the spool is unhealthy
        if self.is_full or self.overflow:
            message.release_data()  # durable already; delivery reloads it from the spool
            self.overflow.append(message)
        else:
            if MEMORY.low:  # one attribute test per message; the body stays on disk
                pressure.entering(self, message)
            self.messages.append(message)
        self.wake()

    def take(self) -> Message | None:
        """The next message of the ready queue (None when it is empty).

        As KumoMTA's connections do when they take a message, one whose scheduled queue
        an operator suspended since it came here is not sent: it gets the suspended
        queue's ``TransientFailure`` (site: this ready queue) and waits for its retry.
        """
        admin = self.shared.admin
        while self.messages:
            message = self.messages.popleft()
            if self.overflow:
                while self.overflow and len(self.messages) < self.config.max_ready // 2 + 1:
                    self.messages.append(self.overflow.popleft())
            # Asked only while some suspension exists: the common path is one test.
            if admin is not None and admin.suspensions and self._defer_suspended(message, admin):
                self._deferred_in_pass += 1
                if self._deferred_in_pass == DEFER_BATCH:  # the count starts over next pass
                    asyncio.get_running_loop().call_soon(self._new_defer_pass)
                if self._deferred_in_pass >= DEFER_BATCH:
                    return None  # more may follow: the caller yields before it asks again
                continue
            return message
        return None

    def held_for_spool(self, message: Message, site: str | None) -> bool:
        """While delivery is held for an unhealthy spool, ``message`` goes back to its
        scheduled queue (:mod:`kumocore.queue.spool_hold`; ``site``: this ready queue's
        name for a message a connection took, None for one entering it); False when
        delivery is not held. Connections ask again just before each transaction."""
        spool_hold = self.shared.spool_hold
        if not HOLD.active or spool_hold is None:
            return False
        spool_hold(message, site)
        return True

    def _new_defer_pass(self) -> None:
        self._deferred_in_pass = 0

    def _defer_suspended(self, message: Message, admin: AdminRules) -> bool:
        queue = self.shared.queue_of(message)
        rule = admin.suspension_for(message.queue_name() if queue is None else queue.name)
        if rule is None:
            return False
        self.shared.outcomes.transient(None, message, queue_suspended(rule.reason), None,
                                       None, queue_site=self.key.name)  # fmt: skip
        return True

    def put_back(self, messages: list[Message]) -> None:
        """Messages taken but not handed to an outcome go back to the front, in order:
        never left outside both the queue and the scheduler. Those of a connection an
        operator aborted go back to their scheduled queue instead, as KumoMTA's dispatcher
        drop sends them (:meth:`Delays.give_back
        <kumocore.queue.delays.Delays.give_back>`)."""
        if not messages:
            return
        connection = current_dispatcher.get()
        if connection is not None and connection.aborted:
            give_back = self.shared.give_back
            if give_back is not None:
                for message in messages:
                    give_back(message)
                return
        self.messages.extendleft(reversed(messages))

    def drain(self) -> list[Message]:
        """Take every queued message (for shutdown, an admin bounce or rebinding)."""
        taken = [*self.messages, *self.overflow]
        self.messages.clear()
        self.overflow.clear()
        return taken

    def fail_queued(self, response: Response) -> None:
        """No connection could be had: every queued message gets ``response`` (usually
        transient, retried with backoff; ``550 5.4.4`` when every MX address is
        prohibited, which would otherwise be a mail loop)."""
        for message in self.drain():
            self.shared.outcomes.handle(self, message, response, peer=None)

    async def next_message(self, idle: float, slot: Slot | None = None) -> Message | None:
        """The next message, waiting up to ``idle`` seconds for one to arrive.

        An idle connection also gives up early when its slot is wanted elsewhere: the
        workers of a node share one connection limit, and one worker's idle connections
        would otherwise starve another worker's queue for the whole ``idle_timeout``.
        """
        now = time.monotonic()
        deadline, check_at = now + idle, now + YIELD_CHECK_SECONDS
        while not self.messages or self.suspended:
            now = time.monotonic()
            if now >= deadline or self.suspended:
                return None
            if now >= check_at:
                if await self.throttles.wanted(slot):
                    return None
                check_at = time.monotonic() + YIELD_CHECK_SECONDS
                continue
            await asyncio.sleep(min(0.05, idle))
        message = self.take()
        while message is None and self.messages:  # take() stopped after a batch deferred
            await asyncio.sleep(0)
            message = self.take()
        return message

    # ------------------------------------------------------------------ config and holds
    def refresh(
        self, config: EgressPathConfig, source: EgressSource, freshness: Freshness
    ) -> None:
        """Routing looked the path's configuration up again (``refresh_strategy``)."""
        self.config, self.source, self.freshness = config, source, freshness

    def reconfigure(self, config: EgressPathConfig, freshness: Freshness) -> None:
        """Use a new configuration now (automation changed an option of this path)."""
        self.refresh(config, self.source, freshness)
        self.wake()

    @property
    def suspended(self) -> bool:
        # HOLD: delivery is held while the spool is unhealthy (kumocore.spool.health).
        return HOLD.active or time.time() < self.suspended_until

    def suspend_until(self, until: float) -> None:
        """Hold the path until ``until`` (a wall-clock time; 0: not held). A hold that is
        lifted, or that lapsed meanwhile, wakes the path."""
        if until == self.suspended_until:
            return
        self.suspended_until = until
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self.suspended:
            self._resume_when_due()
        else:
            # Not "if it was held": a hold can lapse a moment before the automation's
            # next sync lifts it, and that sync is then the path's only wake-up.
            self.wake()

    def _resume_when_due(self) -> None:
        """Wake the path when its hold is over. The loop's timers may run up to a clock
        tick early and the wall clock may step, so the hold is checked again when the
        timer runs, and the timer armed again if it is not over yet."""
        self._resume = None
        remaining = self.suspended_until - time.time()
        if remaining > 0:
            self._resume = asyncio.get_running_loop().call_later(
                remaining + RESUME_MARGIN, self._resume_when_due)
        else:
            self.wake()

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
                    log.warning("connection slot unavailable; retrying",
                                path=self.key.name, error=str(exc))
                    slot = None
                if slot is None:
                    # At the (possibly fleet-wide) limit. Our own ending connections wake
                    # us, but slots held by other nodes free up silently: poll once later.
                    self._retry_slots_later()
                    break
                self.connections += 1
                self._spawn(self._connection(slot))
        finally:
            self._pumping = False

    def _retry_slots_later(self) -> None:
        if self._slot_retry is None:
            self._slot_retry = asyncio.get_running_loop().call_later(
                SLOT_RETRY_SECONDS, self._retry_slots)

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
        try:
            await self.serve(slot, epoch)
        except Exception as exc:  # a bug must not kill the queue: log and move on
            log.exception("connection task failed", path=self.key.name, error=str(exc))
            # ... nor make it reconnect in a tight loop
            self.backoff.failed(
                Response.parse(451, f"4.3.0 connection task failed: {exc}"), epoch)
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
