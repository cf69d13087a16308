"""The queue manager: scheduled queues, routing workers, egress paths, admin actions.

Messages arrive from :mod:`kumocore.reception.intake` (already durable) or from spool recovery.
A message that is due goes to a routing worker, which finds its egress path
(:class:`~kumocore.queue.path.EgressPath`, kept in :attr:`QueueManager.paths`) and puts it
in that path's ready queue; one that is not yet due waits in the :class:`Scheduler`. The
operator's bounce and suspension rules act through the base class
(:mod:`kumocore.queue.admin_actions`).
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING

import structlog

from kumocore.delivery.dane import new_dane_counts
from kumocore.delivery.mta_sts import MtaSts
from kumocore.node.latency import Histogram
from kumocore.queue.admin import AdminRules
from kumocore.queue.admin_actions import QueueAdminActions
from kumocore.queue.delay_counts import DelayCounts
from kumocore.queue.delays import Delays
from kumocore.queue.egress import EgressShared, PathKey
from kumocore.queue.insert_context import (
    DUE_TIME_WAS_REACHED,
    ENUMERATED,
    Context,
    logs_delay,
    with_schedule,
)
from kumocore.queue.outcomes import Outcomes
from kumocore.queue.path import EgressPath, stop_paths
from kumocore.queue.queue_providers import SiteLookups
from kumocore.queue.queue_reaper import QueueReaper
from kumocore.queue.queued import MessagesView, Queued
from kumocore.queue.requeue import requeue_event
from kumocore.queue.routing import Router
from kumocore.queue.routing_workers import RoutingWorkers
from kumocore.queue.schedule import ScheduledQueue, Scheduler
from kumocore.queue.scheduled_totals import ScheduledTotals
from kumocore.status.responses import ResponseLog

if TYPE_CHECKING:
    from kumocore.config import QueueConfig
    from kumocore.dns import Resolver
    from kumocore.logs.dispatch import LogDispatcher
    from kumocore.logs.journal import Journal
    from kumocore.mail.message import Message
    from kumocore.policy.hooks import Hooks
    from kumocore.queue.automation import Automation
    from kumocore.queue.deferred_inject import ResolveQueue
    from kumocore.spool.store import MessageStore
    from kumocore.throttle.store import ThrottleStore

log = structlog.get_logger("kumocore.queue")


class QueueManager(QueueAdminActions):
    """Owns every queued message of this node until it is delivered, bounced or expired."""

    def __init__(
        self,
        *,
        hooks: Hooks,
        resolver: Resolver,
        store: MessageStore,
        logs: LogDispatcher,
        journal: Journal,
        hostname: str,
        nodeid: str,
        throttles: ThrottleStore | None = None,
        tsa: Automation | None = None,
    ) -> None:
        # The services below the queues, given explicitly (kumocore.node.services).
        self.hooks, self.resolver, self.store, self.logs = hooks, resolver, store, logs
        self.hostname, self.nodeid = hostname, nodeid
        self.tsa = tsa
        self.journal = journal  # builds every record the queues write
        #: Recent refusals and bounce classes, for the status page (kumocore.status).
        self.responses = ResponseLog()
        #: DANE decisions by result (``dane_result_count`` on /metrics).
        self.dane_counts = new_dane_counts()
        #: Every owned message's one record, by id (kumocore.queue.queued).
        self.queued: dict[str, Queued] = {}
        #: The same messages, read-only, for the many readers that want only the message.
        self.messages = MessagesView(self.queued)
        self.scheduled: dict[str, ScheduledQueue] = {}
        #: Removes the queues empty for their ``reap_interval``.
        #: Due messages sent back by a queue rate or throttle_insert_ready_queue, by
        #: queue (KumoMTA's delayed_due_to_* counters); a reaped queue's go with it.
        self.delay_counts = DelayCounts()
        #: KumoMTA's ``queue_insert_latency``: each :meth:`insert`.
        self.insert_latency = Histogram()
        self.reaper = QueueReaper(self.scheduled, on_reaped=self.delay_counts.forget)
        #: Their waiting messages summed by domain, tenant, campaign (``/metrics``).
        self.scheduled_totals = ScheduledTotals()
        #: Finds the site of queues whose messages wait before one was routed (their
        #: provider label, kumocore.queue.queue_providers).
        self.site_lookups = SiteLookups(lambda domain: self.resolver.lookup_mx(domain),
                                        self.scheduled_totals.providers.learn_site)
        #: Every egress path of this node, one per (source, site, protocol).
        self.paths: dict[PathKey, EgressPath] = {}
        #: A message's queue name and configuration as the intake resolves them; set
        #: when the node is wired (the deferred injection queue re-queues with it).
        self.resolve_queue: ResolveQueue | None = None
        self.admin = AdminRules()
        self.outcomes = Outcomes(
            journal=journal,
            logs=logs,
            responses=self.responses,
            tsa=tsa,
            record_of=self.record_of,
            retry=self.persist_and_schedule,
            finished=self.forget,
            requeue=functools.partial(requeue_event, self),
            let_go=self.let_go,
            unspool=self.unspool,
        )
        #: What every path shares (throttle stores, resolver, spool, where outcomes go).
        self.egress = EgressShared(
            hooks=hooks,
            resolver=resolver,
            store=store,
            hostname=hostname,
            throttles=throttles,
            dane_counts=self.dane_counts,
            outcomes=self.outcomes,
            tsa=tsa,
            queue_of=self.queue_of,
            forget=self.forget,
        )
        self.egress.admin = self.admin  # a connection defers a suspended queue's mail
        #: Throttle delays, dispatcher drops and their ``Delayed`` records.
        self.delays = Delays(self)
        self.egress.give_back = self.delays.give_back
        self.router = Router(self)
        self.mta_sts = MtaSts(resolver)  # policies applied at MX resolution
        #: Holds each waiting message's record until it is due.
        self.scheduler: Scheduler[Queued] = Scheduler(self._on_due, self.queued.get)
        #: Due messages on their way to their ready queues.
        self.routing = RoutingWorkers(self)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.scheduler.start()
        self.routing.start()
        self.reaper.start(asyncio.get_running_loop())
        self.site_lookups.start(asyncio.get_running_loop())

    async def stop(self, timeout: float = 8.0) -> None:
        """Stop routing and let connections finish what they are sending (bounded)."""
        self.reaper.stop()
        await self.site_lookups.stop()
        await self.scheduler.stop()
        await self.routing.stop()
        await stop_paths(list(self.paths.values()), timeout)
        await self.delays.drain()
        await self.outcomes.drain()

    # ------------------------------------------------------------------ intake
    def insert(
        self,
        message: Message,
        queue_name: str,
        config: QueueConfig,
        context: Context = ENUMERATED,
    ) -> None:
        """Take ownership of a durable message and schedule or route it. ``context`` says
        how it came (KumoMTA's insert reasons): a message that must wait gets a
        ``Delayed`` record unless it was only loaded from the spool."""
        started = time.perf_counter()
        try:
            self._insert(message, queue_name, config, context)
        finally:
            self.insert_latency.observe(time.perf_counter() - started)

    def _insert(
        self, message: Message, queue_name: str, config: QueueConfig, context: Context
    ) -> None:
        queue = self.scheduled.get(queue_name)
        if queue is None:
            queue = self.scheduled[queue_name] = ScheduledQueue(queue_name, config)
        else:
            queue.config = config
        queue.ids.add(message.id)
        old = self.queued.get(message.id)
        record = self.queued[message.id] = Queued(message, queue, context)
        if old is not None:  # owned already (rebind): its old timer goes, its story stays
            self._unwait(old)
            record.last_response = old.last_response
        rule = self.admin.bounce_rule_for(queue_name)
        if rule is not None:
            self.admin_bounce(message, rule)
            return
        due = message.due or 0.0
        if due > time.time():
            self._wait(record, due)
            if logs_delay(context):
                self.delays.log_delayed(record, with_schedule(context, message.meta), due)
        else:
            self.route_now(message.id)

    def queue_of(self, message: Message) -> ScheduledQueue | None:
        record = self.queued.get(message.id)
        return None if record is None else record.queue

    def record_of(self, message: Message) -> Queued | None:
        """The message's one record while the queues own it."""
        return self.queued.get(message.id)

    def schedule(self, message: Message, due: float) -> None:
        """Let an owned message wait until ``due`` (one no longer owned has nothing to
        wait for)."""
        record = self.queued.get(message.id)
        if record is not None:
            self._wait(record, due)

    def unschedule(self, message_id: str) -> bool:
        """Take ``message_id`` off the scheduler; True when it was scheduled."""
        record = self.queued.get(message_id)
        return record is not None and self._unwait(record)

    def _wait(self, record: Queued, due: float) -> None:
        # The per-queue count changes only when the record enters the scheduler, not
        # on each reschedule of a message already waiting.
        queue = record.queue
        if record.due is None and queue is not None:
            self.scheduled_totals.change(queue, 1)
            if queue.site is None:
                self.site_lookups.want(queue)
        self.scheduler.schedule(record, due)
        message = record.message
        if message.unspooled and self.store is not None:
            # Held in memory (deferred_spool) and now waiting, for whatever reason (a
            # dropped connection, a throttle, a later schedule): written, as KumoMTA
            # writes such a message when it enters its scheduled queue's delay.
            self.store.write_soon(message)

    def _unwait(self, record: Queued) -> bool:
        if not self.scheduler.cancel(record):
            return False
        if record.queue is not None:
            self.scheduled_totals.change(record.queue, -1)
        return True

    def _leave_queue(self, record: Queued) -> None:
        self._unwait(record)
        queue, record.queue = record.queue, None
        if queue is not None:
            queue.ids.discard(record.message.id)
            if not queue.ids:
                self.reaper.emptied(queue)  # reaped once empty for its reap_interval

    def detach(self, message: Message) -> None:
        """Take a waiting message out of its scheduled queue (rebind moves it elsewhere);
        it stays owned, spooled and in ``messages`` until re-inserted or forgotten."""
        record = self.queued.get(message.id)
        if record is not None:
            self._leave_queue(record)

    async def persist_and_schedule(self, message: Message, due: float) -> None:
        """After a transient failure: persist attempts/due, drop the body (unless the
        queue's ``shrink_policy`` keeps it for a wait this short), schedule."""
        store = self.store
        if store is not None:
            await store.save_meta(message)
            if not store.bodies_in_memory and self._shrinks(message, due):
                message.release_data()  # bodies of deferred messages live on disk, not in RAM
        self.schedule(message, due)

    def _shrinks(self, message: Message, due: float) -> bool:
        queue = self.queue_of(message)
        return queue is None or queue.config.memory_policy(due - time.time()) != "NoShrink"

    async def load_data(self, message: Message) -> bytes | None:
        store = self.store
        return await store.load_data(message) if store is not None else None

    async def forget(self, message: Message, *, keep_spooled: bool = False) -> None:
        """The message reached a final outcome: drop it from memory and the spool.

        ``keep_spooled`` leaves the spool record (its log record could not be confirmed):
        the next start handles the message again — logged twice rather than never.
        """
        self.let_go(message)
        if not keep_spooled:
            await self.store.remove(message.id)

    def let_go(self, message: Message) -> None:
        """Drop a message with a final outcome from the queues and ``messages`` (what
        :meth:`forget` does before the spool)."""
        record = self.queued.pop(message.id, None)
        if record is not None:
            self._leave_queue(record)

    async def unspool(self, message_ids: list[str]) -> None:
        """Remove messages already let go of from the spool, as one write."""
        await self.store.remove_many(message_ids)

    # ------------------------------------------------------------------ routing
    def _on_due(self, record: Queued) -> None:
        if record.queue is not None:  # the scheduler let it go: one fewer waiting
            self.scheduled_totals.change(record.queue, -1)
        record.context = DUE_TIME_WAS_REACHED
        self.route_now(record.message.id)

    def route_now(self, message_id: str) -> None:
        """Hand an owned message to the routing workers (it is due)."""
        self.routing.route_now(message_id)
