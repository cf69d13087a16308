"""The queue manager as the parts it builds see it: one protocol per part.

Each part of ``queue/`` that opens ready queues takes the manager as a narrow protocol
(the manager is a higher module; none of ``queue/`` imports it). They share
:class:`PathOwner` — what opening any egress path needs — and extend it: ``custom_lua``
paths (:class:`LuaOwner`), the deferred injection queue (:class:`DeferredOwner`), and
routing (:class:`RouterOwner`, which extends both, so the manager it is given can open
every kind of path).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kumocore.config import QueueConfig
    from kumocore.delivery.mta_sts import MtaSts
    from kumocore.dns import Resolver
    from kumocore.logs.journal import Journal
    from kumocore.mail.message import Message
    from kumocore.policy.hooks import Hooks
    from kumocore.queue.admin import AdminRules, QueueRule
    from kumocore.queue.delay_counts import DelayCounts
    from kumocore.queue.delays import Delays
    from kumocore.queue.egress import EgressShared, PathKey
    from kumocore.queue.insert_context import Context
    from kumocore.queue.outcomes import Outcomes
    from kumocore.queue.path import EgressPath
    from kumocore.queue.queued import Queued
    from kumocore.queue.schedule import ScheduledQueue
    from kumocore.queue.scheduled_totals import ScheduledTotals
    from kumocore.spool.store import MessageStore

#: A message's queue name and configuration after the handler (None: the null queue).
ResolveQueue = Callable[["Message"], Awaitable[tuple[str, "QueueConfig | None"]]]


class PathOwner(Protocol):
    """What opening an egress path needs of the queue manager: the hooks, what every
    path shares, and where the paths are kept."""

    @property
    def hooks(self) -> Hooks: ...

    @property
    def egress(self) -> EgressShared: ...

    @property
    def paths(self) -> dict[PathKey, EgressPath]: ...


class LuaOwner(PathOwner, Protocol):
    """What opening a ``custom_lua`` path needs of the queue manager (no more than any
    path: :class:`PathOwner`)."""


class DeferredOwner(PathOwner, Protocol):
    """What the deferred queue needs of the queue manager, beyond opening its path."""

    @property
    def journal(self) -> Journal: ...

    @property
    def outcomes(self) -> Outcomes: ...

    @property
    def store(self) -> MessageStore: ...

    #: Set when the node is wired (the intake's ``resolve_queue_config``).
    resolve_queue: ResolveQueue | None

    def detach(self, message: Message) -> None: ...

    def insert(
        self, message: Message, queue_name: str, config: QueueConfig, context: Context = ...
    ) -> None: ...

    async def forget(self, message: Message, *, keep_spooled: bool = False) -> None: ...


class RouterOwner(LuaOwner, DeferredOwner, Protocol):
    """What routing needs of the queue manager that builds it (and, for ``custom_lua``
    queues, what those ready queues need)."""

    @property
    def outcomes(self) -> Outcomes: ...

    @property
    def admin(self) -> AdminRules: ...

    @property
    def mta_sts(self) -> MtaSts: ...

    @property
    def resolver(self) -> Resolver: ...

    @property
    def scheduled_totals(self) -> ScheduledTotals: ...  # routing learns queues' sites

    @property
    def delay_counts(self) -> DelayCounts: ...  # and counts the messages it sends back

    def queue_of(self, message: Message) -> ScheduledQueue | None: ...

    def record_of(self, message: Message) -> Queued | None: ...

    @property
    def delays(self) -> Delays: ...

    def admin_bounce(self, message: Message, rule: QueueRule) -> None: ...

    async def load_data(self, message: Message) -> bytes | None: ...
