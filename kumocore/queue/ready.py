"""A ready queue per egress path (egress source, site name) and its connections.

Domains whose MX hosts share a site name share one ready queue, so the path's limits —
``connection_limit``, ``max_deliveries_per_connection``, ``max_message_rate`` — hold for all
of them together, as in KumoMTA. Connection slots are leases from the throttle store, so
with Redis the limit holds across every node.

A connection that fails backs the whole path off (:mod:`kumocore.queue.backoff`); a round
in which no host could be reached fails the message it was for, and only after
``consecutive_connection_failures_before_delay`` such rounds in a row the whole queue.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import structlog

from kumocore.queue.backoff import PathBackoff
from kumocore.response import Response

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kumocore.config import EgressPathConfig, EgressSource
    from kumocore.delivery.client import SmtpClientConnection
    from kumocore.delivery.tls import SessionInfo
    from kumocore.message import Message
    from kumocore.queue.automation import Automation
    from kumocore.throttle.store import Lease, ThrottleStore

#: The egress source address an outcome record names (a source's options, or a name).
SourceAddress: TypeAlias = "Mapping[str, Any] | str | None"

log = structlog.get_logger("kumocore.ready")

#: How long a connection slot lease lives before it must be renewed; a crashed node's
#: leases lapse after this.
LEASE_SECONDS = 300.0

#: How soon a queue that found every connection slot taken (by another node) asks again.
SLOT_RETRY_SECONDS = 0.5

#: How often an idle connection asks whether another worker waits for its slot. One
#: answer serves every idle connection of the queue (with the node's store each question
#: is a round trip to the supervisor). Backing off instead left a batch's last messages
#: waiting about a second longer in the benchmark.
YIELD_CHECK_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Slot:
    """A held connection slot: the leases of the path's ``connection_limit`` and of each
    of its ``additional_connection_limits``, with the stores that granted them (taken and
    given back by the egress, held by the ready queue's connection)."""

    leases: tuple[tuple[ThrottleStore, Lease], ...]


#: KumoMTA's response for the messages of a ready queue delayed after too many rounds.
BULK_DELAY = Response.parse(
    451, "4.4.1 bulk delay of ready queue: too many successive connection failures "
    "where there was no answer from any hosts listed in MX")


@dataclass(frozen=True, slots=True)
class PathKey:
    source: str
    site: str
    #: The delivery protocol's ready-queue suffix (``smtp_client``, ``lua:make.webhook``).
    protocol: str = "smtp_client"

    @property
    def name(self) -> str:
        """KumoMTA's ready queue name: ``source->site@smtp_client``."""
        return f"{self.source}->{self.site}@{self.protocol}"


class PathEgress(Protocol):
    """What a ready queue asks of the egress (:class:`kumocore.queue.egress.Egress`):
    connection slots, rates, connect and send."""

    def connection_limit(self, config: EgressPathConfig) -> int: ...

    async def acquire_slot(self, ready: ReadyQueue) -> Slot | None: ...

    async def keep_slot(self, slot: Slot | None) -> None: ...

    async def release_slot(self, slot: Slot | None) -> None: ...

    async def slot_wanted(self, slot: Slot | None) -> bool: ...

    async def wait_for_rate(self, ready: ReadyQueue) -> bool: ...

    async def wait_for_connection_rate(self, ready: ReadyQueue) -> bool: ...

    async def connect(self, ready: ReadyQueue) -> SmtpClientConnection: ...

    async def deliver(
        self, ready: ReadyQueue, conn: SmtpClientConnection, message: Message
    ) -> None: ...


class PathOutcomes(Protocol):
    """Where a ready queue hands an attempt's response
    (:class:`kumocore.queue.outcomes.Outcomes`)."""

    def handle(
        self,
        path: ReadyQueue | None,
        message: Message,
        response: Response,
        peer: dict[str, str] | None,
        source_address: SourceAddress = None,
        session: SessionInfo | None = None,
    ) -> None: ...


class PathOwner(Protocol):
    """What a ready queue needs of its queue manager; the manager builds ready queues, so
    they see it through this protocol instead of importing it."""

    @property
    def egress(self) -> PathEgress: ...

    @property
    def outcomes(self) -> PathOutcomes: ...

    @property
    def tsa(self) -> Automation | None: ...


class ReadyQueue:
    """Messages due for delivery over one egress path, and the connections serving them."""

    def __init__(
        self,
        manager: PathOwner,
        key: PathKey,
        domain: str,
        source: EgressSource,
        config: EgressPathConfig,
    ) -> None:
        self.manager = manager
        self.key = key
        self.domain = domain
        self.source = source
        self.config = config
        self.config_loaded = time.monotonic()
        self.messages: collections.deque[Message] = collections.deque()
        # Beyond max_ready, messages wait here with their bodies released to disk; they
        # move up as the queue drains, instead of waiting out a fixed reschedule delay.
        self.overflow: collections.deque[Message] = collections.deque()
        self.connections = 0
        self.mx: Any = None  # the MailExchanger of the domain that opened this path
        # What to connect to, in order (kumocore.dns.mx.MxTarget), and how: set by routing.
        self.targets: list[Any] = []
        self.protocol: Any = None
        self._pumping = False
        self._slot_retry: asyncio.TimerHandle | None = None
        self._wanted: tuple[float, bool] = (0.0, False)  # (asked at, answer): see _slot_wanted
        self._tasks: set[asyncio.Task[None]] = set()
        self.backoff = PathBackoff(key.name)
        # Connection rounds in a row in which no host could be reached (KumoMTA's
        # consecutive_connection_failures); a connection that opens resets it.
        self.connection_failures = 0
        # Held by a traffic shaping automation ``Suspend`` until this time (unix seconds).
        self.suspended_until = 0.0
        self._resume: asyncio.TimerHandle | None = None
        tsa = manager.tsa
        if tsa is not None:  # a path opened while a Suspend holds starts held
            self.suspend_until(tsa.held_until(key.name))

    def __len__(self) -> int:
        return len(self.messages) + len(self.overflow)

    @property
    def is_full(self) -> bool:
        return len(self.messages) >= self.config.max_ready

    def add(self, message: Message) -> None:
        if self.is_full or self.overflow:
            message.release_data()  # durable already; delivery reloads it from the spool
            self.overflow.append(message)
        else:
            self.messages.append(message)
        self.wake()

    def _refill(self) -> None:
        while self.overflow and len(self.messages) < self.config.max_ready // 2 + 1:
            self.messages.append(self.overflow.popleft())

    @property
    def suspended(self) -> bool:
        return time.time() < self.suspended_until

    def suspend_until(self, until: float) -> None:
        """Hold the path until ``until`` (0: not held); a lifted hold wakes it."""
        if until == self.suspended_until:
            return
        was_held, self.suspended_until = self.suspended, until
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self.suspended:
            self._resume = asyncio.get_running_loop().call_later(
                until - time.time(), self.wake)
        elif was_held:
            self.wake()

    def reconfigure(self, config: EgressPathConfig) -> None:
        """Use a new configuration now (automation changed an option of this path)."""
        self.config = config
        self.config_loaded = time.monotonic()
        self.wake()

    def wake(self) -> None:
        """Open connections if there is work and the limit allows (never blocks)."""
        if self._pumping or not self.messages or self.suspended:
            return
        if self.backoff.active:
            self.backoff.call_when_over(self.wake)
            return
        self._pumping = True
        task = asyncio.get_running_loop().create_task(self._pump())
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
                    lease = await self.manager.egress.acquire_slot(self)
                except Exception as exc:
                    # A throttle store that fails (rather than reporting an outage) must
                    # not strand the queue: nothing else wakes it once arrivals stop.
                    log.warning("connection slot unavailable; retrying",
                                path=self.key.name, error=str(exc))
                    lease = None
                if lease is None:
                    # At the (possibly fleet-wide) limit. Our own ending connections wake
                    # us, but slots held by other nodes free up silently: poll once later.
                    self._retry_slots_later()
                    break
                self.connections += 1
                task = asyncio.get_running_loop().create_task(self._connection(lease))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
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
        limit = self.manager.egress.connection_limit(self.config)
        if self.backoff.failures:  # probing a failing MX: one connection until one works
            limit = 1
        # No more connections than queued messages: a new connection has not taken its
        # first message yet, so the open ones already stand for that many queued ones.
        return min(limit, len(self.messages))

    async def _connection(self, lease: Any) -> None:
        epoch = self.backoff.epoch
        try:
            await self._serve_connection(lease, epoch)
        except Exception as exc:  # a bug must not kill the queue: log and move on
            log.exception("connection task failed", path=self.key.name, error=str(exc))
            # ... nor make it reconnect in a tight loop
            self.backoff.failed(
                Response.parse(451, f"4.3.0 connection task failed: {exc}"), epoch)
        finally:
            self.connections -= 1
            await self.manager.egress.release_slot(lease)
            self.wake()

    async def _serve_connection(self, lease: Any, epoch: int) -> None:
        if not self.messages or not await self.manager.egress.wait_for_connection_rate(self):
            return
        try:
            conn = await self.manager.egress.connect(self)
        except ConnectionFailed as failure:
            self._round_failed(failure.response, epoch)
            return
        self.connection_failures = 0
        try:
            await self._deliver_over(conn, lease)
        finally:
            await conn.close()
            if conn.failure is not None:
                self.backoff.failed(conn.failure, epoch)

    async def _deliver_over(self, conn: SmtpClientConnection, lease: Any) -> None:
        idle = float(self.config.idle_timeout)
        delivered = 0
        while (delivered < self.config.max_deliveries_per_connection and not conn.closed
               and not self.suspended):
            message = await self._next_message(idle, lease)
            if message is None:
                return
            if not await self._deliver_one(conn, message):
                return  # the message rate is exhausted: hand the slot back
            if conn.failure is None:
                self.backoff.worked()
            delivered += 1
            await self.manager.egress.keep_slot(lease)

    async def _deliver_one(self, conn: SmtpClientConnection, message: Message) -> bool:
        """Send ``message``; False when the message rate says not now.

        If anything raises before its outcome is recorded, or the rate refuses, the
        message goes back to the front of the queue: never left outside both the queue
        and the scheduler.
        """
        handed = False
        try:
            if not await self.manager.egress.wait_for_rate(self):
                return False
            await self.manager.egress.deliver(self, conn, message)
            handed = True
            return True
        finally:
            if not handed:
                self.messages.appendleft(message)

    async def _next_message(self, idle: float, lease: Any = None) -> Message | None:
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
                if await self._slot_wanted(lease):
                    return None
                check_at = time.monotonic() + YIELD_CHECK_SECONDS
                continue
            await asyncio.sleep(min(0.05, idle))
        message = self.messages.popleft()
        if self.overflow:
            self._refill()
        return message

    async def _slot_wanted(self, lease: Slot | None) -> bool:
        """Whether another worker waits for this queue's slots (one answer shared by the
        queue's idle connections for YIELD_CHECK_SECONDS: they hold the same limits)."""
        asked_at, answer = self._wanted
        if time.monotonic() - asked_at < YIELD_CHECK_SECONDS:
            return answer
        answer = await self.manager.egress.slot_wanted(lease)
        self._wanted = (time.monotonic(), answer)
        return answer

    def _round_failed(self, response: Response, epoch: int) -> None:
        """No host of the path took a connection (one exhausted round, as KumoMTA says).

        As in KumoMTA, the message the connection was opened for gets the failure, and
        the next round may start at once; once more than
        ``consecutive_connection_failures_before_delay`` rounds in a row failed, every
        message in the ready queue is delayed and the path backs off (and keeps backing
        off, longer each time, until a connection opens). So a dead MX costs at most that
        many back-to-back rounds — fewer when fewer messages are queued — not a
        reconnect loop. A permanent failure (every MX address prohibited: a mail loop)
        fails the whole queue at once.
        """
        if not response.is_transient:
            self.backoff.failed(response, epoch)
            self._fail_queued(response)
            return
        self.connection_failures += 1
        if self.messages:
            message = self.messages.popleft()
            if self.overflow:
                self._refill()
            self.manager.outcomes.handle(self, message, response, peer=None)
        if self.connection_failures > self.config.consecutive_connection_failures_before_delay:
            self.backoff.failed(response, epoch)
            self._fail_queued(BULK_DELAY)

    def _fail_queued(self, response: Response) -> None:
        """No MX host could take a connection: every queued message gets that response.

        Usually transient (retried with backoff); permanent when every MX address is
        prohibited (``550 5.4.4``), which would otherwise be a mail loop.
        """
        failed = self.drain()
        for message in failed:
            self.manager.outcomes.handle(self, message, response, peer=None)

    def drain(self) -> list[Message]:
        """Take every queued message (for shutdown, suspension or rebinding)."""
        taken = [*self.messages, *self.overflow]
        self.messages.clear()
        self.overflow.clear()
        return taken

    async def stop(self) -> None:
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


class ConnectionFailed(Exception):
    """No MX host of the path could be reached; ``response`` says why."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.to_single_line())
        self.response = response
