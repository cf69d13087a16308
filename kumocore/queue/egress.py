"""What every egress path of a node shares, and how a path is named.

An egress path (:class:`kumocore.queue.path.EgressPath`) owns one (source, site) path;
the services below it — the hooks, the resolver, the spool, the throttle stores, the
sites with broken TLS, the DANE counters, where outcomes go — are the same for every path
of the node. The queue manager builds one :class:`EgressShared` and hands it to each path
it opens, so a path never reaches back into the manager.

This module sits below the paths and the outcomes: both import it, it imports neither.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from kumocore.queue.egress_counts import EgressCounts
from kumocore.queue.ready_suspend import ReadySuspensions
from kumocore.queue.source_health import SourceHealth

if TYPE_CHECKING:
    from collections import Counter

    from kumocore.config import EgressPathConfig
    from kumocore.delivery.broken_tls import BrokenTls
    from kumocore.delivery.tls import SessionInfo
    from kumocore.dns import Resolver
    from kumocore.logs.dispatch import Ticket
    from kumocore.logs.journal import Journal
    from kumocore.mail.message import Message
    from kumocore.mail.response import Response
    from kumocore.node.latency import LabelledHistograms
    from kumocore.policy.hooks import Hooks
    from kumocore.queue.admin import AdminRules
    from kumocore.queue.automation import Automation
    from kumocore.queue.batch_groups import Group
    from kumocore.queue.schedule import ScheduledQueue
    from kumocore.spool.store import MessageStore
    from kumocore.throttle.store import ThrottleStore

#: The egress source address an outcome record names (a source's options, or a name).
SourceAddress: TypeAlias = "Mapping[str, Any] | str | None"


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

    @property
    def protocol_kind(self) -> str:
        """The protocol without its detail (``smtp_client``, ``lua``): what KumoMTA's
        metrics and log records name the ready queue's protocol by."""
        return self.protocol.partition(":")[0]


class PathView(Protocol):
    """What an outcome record needs to know of the path an attempt took."""

    @property
    def key(self) -> PathKey: ...

    @property
    def config(self) -> EgressPathConfig: ...


class PathOutcomes(Protocol):
    """Where a path hands an attempt's response (:class:`kumocore.queue.outcomes.Outcomes`)."""

    @property
    def journal(self) -> Journal: ...  # the progress watchdog writes its Delayed there

    @property
    def deliver_latency(self) -> LabelledHistograms: ...  # each attempt, by protocol

    def handle(
        self,
        path: PathView | None,
        message: Message,
        response: Response,
        peer: dict[str, str] | None,
        source_address: SourceAddress = None,
        session: SessionInfo | None = None,
        kind: str | None = None,
    ) -> None: ...

    def transient(
        self,
        path: PathView | None,
        message: Message,
        response: Response,
        peer: dict[str, str] | None,
        source_address: SourceAddress,
        *,
        queue_site: bool | str = False,
    ) -> None: ...

    async def transient_retried_now(
        self,
        path: PathView,
        message: Message,
        response: Response,
        peer: dict[str, str] | None,
        source_address: SourceAddress,
        session: SessionInfo | None = None,
    ) -> None: ...

    # A transaction for several recipients (kumocore.queue.batch_outcomes).
    def count_batch(self, path: PathView | None, groups: Sequence[Group]) -> None: ...

    async def record_batch(
        self, path: PathView | None, message: Message, groups: Sequence[Group],
        peer: dict[str, str] | None, source_address: SourceAddress,
        session: SessionInfo | None = None,
    ) -> list[Ticket | None]: ...

    async def written(self, message: Message, tickets: Sequence[Ticket | None]) -> bool: ...

    def batch(
        self, path: PathView | None, message: Message, groups: Sequence[Group],
        peer: dict[str, str] | None, source_address: SourceAddress,
        session: SessionInfo | None = None, *, left: bool,
    ) -> None: ...


class EgressShared:
    """The services every egress path of one node uses (see the module docstring)."""

    __slots__ = (
        "admin",
        "broken_tls",
        "connections_opened",
        "counts",
        "dane_counts",
        "forget",
        "give_back",
        "hooks",
        "hostname",
        "local",
        "outcomes",
        "queue_of",
        "ready_holds",
        "resolver",
        "source_health",
        "spool_hold",
        "store",
        "throttles",
        "tsa",
        "watchdog_aborts",
    )

    def __init__(
        self,
        *,
        hooks: Hooks,
        resolver: Resolver,
        store: MessageStore,
        hostname: str,
        throttles: ThrottleStore | None,
        dane_counts: Counter[str],
        outcomes: PathOutcomes,
        tsa: Automation | None,
        queue_of: Callable[[Message], ScheduledQueue | None],
        forget: Callable[..., Awaitable[None]],
    ) -> None:
        from kumocore.delivery.broken_tls import BrokenTls
        from kumocore.throttle.local import LocalThrottleStore

        self.hooks, self.resolver, self.store, self.hostname = hooks, resolver, store, hostname
        #: The node's (or fleet's) throttle store; None: each path throttles in this
        #: process only, in ``local``.
        self.throttles = throttles
        #: Limits and rates marked ``force_local``, and all of them without a shared store.
        self.local: ThrottleStore = LocalThrottleStore()
        #: Sites whose TLS failed, remembered for every path to them.
        self.broken_tls: BrokenTls = BrokenTls()
        #: DANE decisions by result (``dane_result_count`` on /metrics).
        self.dane_counts = dane_counts
        self.outcomes = outcomes
        #: Traffic shaping automation: a path opened while a ``Suspend`` holds starts held.
        self.tsa = tsa
        #: Operator suspensions of ready queues (``/api/admin/suspend-ready-q/v1``).
        self.ready_holds = ReadySuspensions()
        #: Sources suspended for failing connections (``suspend_when_unplumbed``...).
        self.source_health = SourceHealth()
        #: The message's scheduled queue (for the name a status rewrite sees).
        self.queue_of = queue_of
        #: ``forget(message, keep_spooled=...)``: the message leaves the queues.
        self.forget = forget
        #: The operator's rules over scheduled queues (set by the queue manager): a
        #: connection defers a message whose scheduled queue is suspended.
        self.admin: AdminRules | None = None
        #: ``give_back(message[, context])``: a message whose connection an operator
        #: aborted (or whose source is suspended) goes back to its scheduled queue (set by
        #: the queue manager).
        self.give_back: Callable[..., None] | None = None
        #: Connections the progress watchdog aborted, by KumoMTA's ``service`` label
        #: (``dispatcher_watchdog_aborted_total``; :mod:`kumocore.queue.watchdog`).
        self.watchdog_aborts: Counter[str] = collections.Counter()
        #: Connections (sessions) every path opened since start, by protocol (``smtp_client``,
        #: ``lua``...): KumoMTA's node-wide ``total_connection_count`` series, which outlive
        #: the paths (a path's own count goes with it, as a reaped ready queue's does).
        self.connections_opened: Counter[str] = collections.Counter()
        #: Ready queue maintenance passes and failed binds / proxy connections
        #: (``total_readyq_runs``, ``bind_failures``, ``proxy_connection_failures``).
        self.counts = EgressCounts()
        #: ``spool_hold(message, site)``: while delivery is held for an unhealthy spool, a
        #: message about to be attempted goes back to its scheduled queue instead
        #: (:mod:`kumocore.queue.spool_hold`; set by the node).
        self.spool_hold: Callable[[Message, str | None], None] | None = None

    def held_until(self, path_name: str) -> float:
        """When the hold of ready queue ``path_name`` ends: the later of its automation
        ``Suspend`` and its operator suspension (0: not held)."""
        automation = self.tsa.held_until(path_name) if self.tsa is not None else 0.0
        return max(automation, self.ready_holds.held_until(path_name))

    def throttle_store(self, force_local: bool) -> ThrottleStore:
        shared = self.throttles
        return self.local if force_local or shared is None else shared

    async def load_data(self, message: Message) -> bytes | None:
        store = self.store
        return await store.load_data(message) if store is not None else None

    async def quarantine(self, message: Message) -> None:
        """Set a message whose body is missing aside (meta kept where an operator can
        find it, and where the next start won't trip over it), and forget it."""
        store = self.store
        if store is not None:
            await store.quarantine(message.id, message.meta_bytes(), "data record missing")
        await self.forget(message, keep_spooled=True)
