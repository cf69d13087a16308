"""Accepting messages: from "the policy said yes" to "durable, logged and queued".

Both listeners (SMTP after DATA, HTTP per generated message) hand their messages here
after the reception event ran. As KumoMTA does, the queue configuration is resolved
*before* the message is acknowledged: a policy error there refuses the message instead of
losing it later. Saves of concurrent messages overlap, so the spool's group commit turns
them into one synced write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Protocol, TypeVar

import structlog

from kumocore.digits import decimal
from kumocore.errors import Rejection
from kumocore.logs.record import PeerAddress
from kumocore.mail.queue_name import NULL_QUEUE, message_queue
from kumocore.node.latency import Histogram
from kumocore.policy.refresh import Freshness
from kumocore.queue.deferred_inject import DEFERRED_QUEUE_NAME, deferred_queue_config
from kumocore.queue.generator_inject import (
    GENERATOR_QUEUE_NAME,
    GenerateRequest,
    generator_queue_config,
)
from kumocore.queue.insert_context import RECEIVED

if TYPE_CHECKING:
    from kumocore.config import QueueConfig
    from kumocore.logs.dispatch import LogDispatcher
    from kumocore.logs.journal import Journal
    from kumocore.mail.message import Message
    from kumocore.node.node_metrics import ReceptionCounter
    from kumocore.policy.hooks import Hooks
    from kumocore.queue.insert_context import Context
    from kumocore.spool.storage_guard import StorageMonitor
    from kumocore.spool.store import MessageStore

log = structlog.get_logger("kumocore.reception.intake")

_T = TypeVar("_T")
#: How long a message waits for room in the log sinks before it is refused with a 451.
LOG_ROOM_SECONDS = 10.0
#: What the names of KumoMTA's internal queues (transfers, deferred injection) end with.
INTERNAL_QUEUE_SUFFIX = ".kumomta.internal"
#: Bound on cached queue configurations (one per distinct queue name).
MAX_CACHED_QUEUE_CONFIGS = 100_000


class QueueInsert(Protocol):
    """What intake needs of the queues (:class:`kumocore.queue.manager.QueueManager`)."""

    def insert(
        self, message: Message, queue_name: str, config: QueueConfig, context: Context = ...
    ) -> None:
        """Queue a durable message in its scheduled queue (``context``: how it came)."""
        ...


@dataclass(frozen=True, slots=True)
class Accepted:
    """The outcome for one message: ``error`` is None when it is durable and queued."""

    message: Message
    error: BaseException | None = None
    discarded: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def peer_ip(received_from: str) -> str:
    """The IP of a ``received_from`` meta value (``"ip:port"``, ``"[v6]:port"`` or an IP).

    KumoMTA's log records carry the peer's address without its port.
    """
    if received_from.startswith("["):
        return received_from[1:].partition("]")[0]
    host, sep, port = received_from.rpartition(":")
    if sep and decimal(port, max_digits=5) is not None and ":" not in host:
        return host
    return received_from


async def _each(
    fn: Callable[[Message], Awaitable[_T]], messages: Sequence[Message]
) -> list[_T | BaseException]:
    """``fn`` for every message, concurrently; an exception is returned, not raised.

    That is ``asyncio.gather(..., return_exceptions=True)``, which wraps each call in a
    task: worth it for several messages (their spool writes share a group commit), pure
    overhead for the usual one, which is awaited directly.
    """
    if len(messages) != 1:
        return await asyncio.gather(*(fn(m) for m in messages), return_exceptions=True)
    try:
        return [await fn(messages[0])]
    except Exception as exc:
        return [exc]


class Intake:
    """The reception → spool → log → queue pipeline."""

    def __init__(
        self,
        *,
        hooks: Hooks,
        store: MessageStore,
        logs: LogDispatcher | None,
        journal: Journal,
        queues: QueueInsert,
        nodeid: str,
        receptions: ReceptionCounter,
        storage: StorageMonitor | None = None,
        generate: GenerateRequest | None = None,
    ) -> None:
        # What the pipeline writes to, given by the server (kumocore.node.services).
        self.hooks, self.store, self.logs, self.queues = hooks, store, logs, queues
        self.nodeid, self.receptions, self.storage = nodeid, receptions, storage
        self._configs: dict[str, tuple[QueueConfig, Freshness]] = {}
        #: Builds the Reception records (kumocore.logs.journal).
        self.journal = journal
        #: The queue of deferred HTTP injection requests, running ``generate`` (the
        #: node's HTTP injection, kumocore.http.inject_deferred).
        self.generator_config = generator_queue_config(generate)
        #: KumoMTA's ``queue_resolve_latency``: each :meth:`resolve_queue_config`.
        self.resolve_latency = Histogram()

    async def resolve_queue_config(self, message: Message) -> tuple[str, QueueConfig | None]:
        """The scheduled queue name and its configuration (None for the null queue).

        Answers are kept per queue name as the answer's ``refresh_strategy`` says (for its
        ``refresh_interval``, or until the configuration epoch changes), as KumoMTA does: the
        policy is asked once per queue, not once per message. Errors are never cached, so a
        refused message is asked about again when it is retried.

        Every call is timed (``queue_resolve_latency``), failed ones too, as KumoMTA times
        resolving a queue name before each insert.
        """
        started = perf_counter()
        try:
            name, parts = message_queue(message)
            if name == NULL_QUEUE:
                return name, None
            if name.endswith(INTERNAL_QUEUE_SUFFIX):  # KumoMTA's own queues: built-in
                if name == DEFERRED_QUEUE_NAME:
                    return name, deferred_queue_config()
                if name == GENERATOR_QUEUE_NAME:
                    return name, self.generator_config
                from kumocore.xfer.send import xfer_queue_config

                xfer = xfer_queue_config(name)
                if xfer is not None:
                    return name, xfer
            cached = self._configs.get(name)
            epoch = self.hooks.config_epoch
            if cached is not None and not cached[1].due(cached[0], epoch):
                return name, cached[0]
            config = await self.hooks.get_queue_config(
                parts.domain, parts.tenant, parts.campaign, parts.routing_domain)
            if config is not None:
                if len(self._configs) >= MAX_CACHED_QUEUE_CONFIGS:
                    self._configs.clear()
                self._configs[name] = (config, Freshness.now(config, epoch))
            return name, config
        finally:
            self.resolve_latency.observe(perf_counter() - started)

    async def accept(
        self, messages: Sequence[Message], *, reception_protocol: str,
        without_reception_record: frozenset[str] = frozenset(),
        all_or_nothing: bool = False,
        deferred_spool: bool = False,
    ) -> list[Accepted]:
        """Make each message durable, log its reception and queue it.

        Failures are per message (the caller decides the reply); nothing that is reported
        ``ok`` can be lost, and nothing that is not ``ok`` was stored. With
        ``deferred_spool`` (KumoMTA's listener and injection option) a message is held in
        memory instead, and written only once it has to wait (MessageStore.defer): a
        crash before then loses it, which the operator accepted by asking for it.
        """
        resolved = await _each(self.resolve_queue_config, messages)
        results: list[Accepted | None] = [None] * len(messages)
        to_save: list[tuple[int, str, QueueConfig]] = []
        for index, (message, outcome) in enumerate(zip(messages, resolved, strict=True)):
            if isinstance(outcome, BaseException):
                results[index] = Accepted(message, error=outcome)
            elif outcome[1] is None:
                results[index] = Accepted(message, discarded=True)
            else:
                to_save.append((index, outcome[0], outcome[1]))
        first_error = next((r.error for r in results if r is not None and r.error), None)
        if all_or_nothing and first_error is not None:
            # One SMTP reply covers the whole transaction: if it will be a refusal, store
            # none of it, or the client's retry would deliver the others twice.
            return [r if r is not None and r.error else Accepted(m, error=first_error)
                    for m, r in zip(messages, results, strict=True)]

        refusal = await self._admission()
        if refusal is not None:
            return [r if r is not None else Accepted(m, error=refusal)
                    for m, r in zip(messages, results, strict=True)]
        for result in results:
            # KumoMTA logs a Reception for a message it then discards into the null queue.
            if result is not None and result.discarded \
                    and result.message.id not in without_reception_record:
                self._log_reception(result.message, NULL_QUEUE, reception_protocol)

        received = self.receptions
        to_store = [messages[i] for i, _, _ in to_save]
        saved: list[BaseException | None]
        if deferred_spool and self.store.holds:  # (not once the node is stopping)
            for message in to_store:
                self.store.defer(message)
            saved = [None] * len(to_store)
        else:
            saved = await _each(self.store.save, to_store)
        for (index, queue, config), error in zip(to_save, saved, strict=True):
            message = messages[index]
            if isinstance(error, BaseException):
                log.error("spool write failed", id=message.id, error=str(error))
                results[index] = Accepted(message, error=error)
                continue
            if message.id not in without_reception_record:
                self._log_reception(message, queue, reception_protocol)
            self.queues.insert(message, queue, config, RECEIVED)
            received.add(reception_protocol)
            results[index] = Accepted(message)
        return [r for r in results if r is not None]

    async def _admission(self) -> Rejection | None:
        """Why no message may be stored now (spool disk under its floor, log sinks too
        far behind), or None. Checked before anything is spooled, so a refusal costs the
        client a retry and loses nothing."""
        storage = self.storage
        if storage is not None and storage.over_limit:
            return storage.refusal()
        logs = self.logs
        if logs is not None and not logs.has_room() and not await logs.room(LOG_ROOM_SECONDS):
            # Their Reception records could not be kept: hold reception back instead.
            return Rejection(451, "4.3.0 log writing is behind. Try later")
        return None

    def _log_reception(self, message: Message, queue: str, reception_protocol: str) -> None:
        peer = PeerAddress(str(message.meta.get("ehlo_domain", "")),
                           peer_ip(str(message.meta.get("received_from", ""))))
        self.journal.reception(
            message, queue=queue, peer=peer, protocol=reception_protocol)
