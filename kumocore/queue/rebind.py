"""Operator actions on waiting messages: KumoMTA's rebind (and so "retry now"), and
listing a scheduled queue's messages.

``rebind`` selects scheduled queues by campaign/tenant/domain/routing_domain (as bounce
and suspend rules do), merges ``data`` into the meta of each message waiting there — or,
with ``trigger_rebind_event``, lets the policy's ``rebind_message`` handler decide what to
change (:mod:`kumocore.queue.rebind_event`) — and re-resolves its queue: a message whose
queue changed moves to the new queue, is due at once and is logged as ``AdminRebind``;
one whose queue did not change keeps its due time unless ``always_flush`` asks for
immediate delivery — which is how ``kumocore queue flush`` retries deferred mail now,
like Postfix's ``postqueue -f``.

Only messages waiting in the scheduler are touched: ones already in a ready queue or
being delivered are on their way, as in KumoMTA. Each message leaves the scheduler while
it is worked on (KumoMTA drains the queue first), so it cannot fall due and be routed
half-rebound while the policy or the spool is awaited. A rebind over a large queue hands
the event loop back every :data:`YIELD_EVERY` seconds, and saves the metas it changed in
that time as one spool write before it moves those messages on.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import structlog

from kumocore.errors import ConfigError
from kumocore.mail.queue_name import message_queue_name
from kumocore.queue.insert_context import ADMIN_REBIND
from kumocore.queue.rebind_event import apply_rebind_event, warn_without_handler

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from kumocore.config import QueueConfig
    from kumocore.mail.message import Message
    from kumocore.queue.admin import QueueRule
    from kumocore.queue.manager import QueueManager

log = structlog.get_logger("kumocore.queue")

_REBIND_FIELDS = {"campaign", "tenant", "domain", "routing_domain", "reason", "data",
                  "always_flush", "suppress_logging", "trigger_rebind_event"}  # fmt: skip
_FLAGS = ("always_flush", "suppress_logging", "trigger_rebind_event")

#: Seconds of rebinding between two yields to the event loop: other clients of the worker
#: wait at most about this long while a large queue is rebound.
YIELD_EVERY = 0.005

#: A message's (possibly new) queue name and configuration (None: the null queue).
ResolveQueue: TypeAlias = "Callable[[Message], Awaitable[tuple[str, QueueConfig | None]]]"


@dataclass(frozen=True)
class RebindRequest:
    """A validated KumoMTA ``RebindV1Request``."""

    rule: QueueRule  # the matching criteria (and reason)
    data: dict[str, str]
    always_flush: bool
    suppress_logging: bool
    trigger_rebind_event: bool = False


def parse_rebind(body: dict[str, Any]) -> RebindRequest:
    from kumocore.queue.admin import parse_rule

    unknown = sorted(set(body) - _REBIND_FIELDS)
    if unknown:
        allowed = ", ".join(sorted(_REBIND_FIELDS))
        raise ConfigError(f"unknown field {unknown[0]!r}; allowed: {allowed}")
    data = body.get("data", {})
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):  # fmt: skip
        raise ConfigError("field 'data' must be an object of string keys and string values")
    for flag in _FLAGS:
        if not isinstance(body.get(flag, False), bool):
            raise ConfigError(f"field {flag!r} must be a boolean")
    names = ("campaign", "tenant", "domain", "routing_domain", "reason")
    criteria: dict[str, Any] = {k: body[k] for k in names if k in body}
    always_flush, suppress_logging, trigger = (bool(body.get(f, False)) for f in _FLAGS)
    return RebindRequest(parse_rule(criteria), data, always_flush, suppress_logging, trigger)


async def rebind(
    manager: QueueManager, request: RebindRequest, resolve: ResolveQueue
) -> dict[str, int]:
    """Apply ``request``; returns how many messages moved and how many were flushed.

    ``resolve`` gives a message's new queue and its configuration (the intake's
    :meth:`~kumocore.reception.intake.Intake.resolve_queue_config`, which caches them).

    The messages are taken a slice at a time: for :data:`YIELD_EVERY` each is taken out
    of the scheduler and changed; then, after a turn of the loop, the slice's changed
    metas are saved together (one spool write,
    :meth:`~kumocore.spool.store.MessageStore.save_metas`: a synced write per message, one
    after the other, made 10,000 messages take 19-36 s on RocksDB) and its messages moved
    or put back, the loop turning every :data:`YIELD_EVERY` meanwhile."""
    if request.trigger_rebind_event:
        warn_without_handler(manager, request.rule.reason)
    counts = {"moved": 0, "flushed": 0}
    work = _Slice()
    taking_ends = time.perf_counter() + YIELD_EVERY
    for candidate in _candidates(manager, request.rule):
        if candidate is not None:
            await _take(manager, *candidate, request, resolve, work, counts)
        if time.perf_counter() >= taking_ends:
            await asyncio.sleep(0)  # let the worker's other clients in
            await _settle(manager, request, work, counts)
            await asyncio.sleep(0)
            taking_ends = time.perf_counter() + YIELD_EVERY
    await _settle(manager, request, work, counts)
    log.info("rebind", reason=request.rule.reason, **counts)
    return counts


def _candidates(manager: QueueManager, rule: QueueRule) -> Iterator[tuple[str, str] | None]:
    """(queue name, message id) of every message in the queues ``rule`` matches, and
    None after every few queues looked at (a moment to let the loop turn)."""
    for queue in manager.matching_queues(rule):
        if queue is None:
            yield None
            continue
        for message_id in list(queue.ids):
            yield queue.name, message_id


@dataclass(slots=True)
class _Slice:
    """The messages of a slice whose metas are to be saved, out of the scheduler until
    then: ``moves`` go to another queue (old queue, new queue and its configuration),
    ``stays`` back to their own; each with the due time it had."""

    moves: list[tuple[Message, str, str, QueueConfig | None, float]] = field(
        default_factory=list)
    stays: list[tuple[Message, str, float]] = field(default_factory=list)

    def taken(self) -> list[tuple[Message, str, float]]:
        """Every message of the slice, its queue and its due time."""
        return [(m, old, due) for m, old, _, _, due in self.moves] + self.stays


async def _take(manager: QueueManager, queue_name: str, message_id: str, request: RebindRequest,
                resolve: ResolveQueue, work: _Slice, counts: dict[str, int]) -> None:  # fmt: skip
    """Take ``message_id`` out of the scheduler and change it; what becomes of it once
    its meta is saved goes into ``work`` (or it goes back at once, with nothing to save)."""
    message = manager.messages.get(message_id)
    due = manager.scheduler.due_time(message_id)
    if message is None or due is None:
        return  # on its way already (ready queue or in flight)
    manager.unschedule(message_id)  # see the module's docstring
    try:
        if request.trigger_rebind_event:
            changed = await apply_rebind_event(manager, message, request.data)
        else:
            for key, value in request.data.items():
                message.set_meta(key, value)
            changed = bool(request.data)
        if not _still_in(manager, message, queue_name):
            return  # it left meanwhile (an admin bounce...): nothing more to do
        if message_queue_name(message) != queue_name:
            new, config = await resolve(message)
            work.moves.append((message, queue_name, new, config, due))
            return
    except Exception as exc:  # KumoMTA: logged; the message stays in its queue
        _failed(manager, message, queue_name, due, exc)
        return
    if changed and manager.store is not None:
        work.stays.append((message, queue_name, due))
        return
    manager.schedule(message, time.time() if request.always_flush else due)
    if request.always_flush:
        counts["flushed"] += 1


async def _settle(manager: QueueManager, request: RebindRequest, work: _Slice,
                  counts: dict[str, int]) -> None:  # fmt: skip
    """Save the slice's changed metas as one write, then move or put back its messages."""
    taken = work.taken()
    if not taken:
        return
    moves, stays = work.moves, work.stays
    work.moves, work.stays = [], []
    # The turn starts before the save: serialising the slice's metas is work of this
    # turn too (counted from after it, a turn was the save and 5 ms more: 10-11 ms).
    turn_ends = time.perf_counter() + YIELD_EVERY
    try:
        if manager.store is not None:
            await manager.store.save_metas([message for message, _, _ in taken])
    except Exception as exc:  # none of them is saved: each stays where it was
        for message, queue_name, due in taken:
            _failed(manager, message, queue_name, due, exc)
        return
    discarded: list[str] = []
    for message, old, new, config, due in moves:
        if time.perf_counter() >= turn_ends:
            await asyncio.sleep(0)  # (each move is a record and an insert: 40 us)
            turn_ends = time.perf_counter() + YIELD_EVERY
        if not _still_in(manager, message, old):
            continue
        try:
            _move(manager, message, old, new, config, request)
        except Exception as exc:
            _failed(manager, message, old, due, exc)
            continue
        counts["moved"] += 1
        if config is None:  # rebound into the null queue: discarded, as at reception
            discarded.append(message.id)
    for message, queue_name, due in stays:
        if _still_in(manager, message, queue_name):
            manager.schedule(message, time.time() if request.always_flush else due)
            if request.always_flush:
                counts["flushed"] += 1
    if discarded and manager.store is not None:
        await manager.unspool(discarded)


def _still_in(manager: QueueManager, message: Message, queue_name: str) -> bool:
    queue = manager.queue_of(message)
    return queue is not None and queue.name == queue_name


def _failed(manager: QueueManager, message: Message, queue_name: str, due: float,
            exc: Exception) -> None:  # fmt: skip
    log.error("rebind failed; the message stays where it was", id=message.id,
              queue=queue_name, error=str(exc))  # fmt: skip
    manager.schedule(message, due)


def _move(manager: QueueManager, message: Message, old: str, new: str,
          config: QueueConfig | None, request: RebindRequest) -> None:  # fmt: skip
    """Move ``message`` (out of the scheduler, its meta saved) into the queue ``new``
    its meta now names (``config`` None: the null queue, where it is let go of)."""
    manager.detach(message)
    if not request.suppress_logging:
        _log_rebind(manager, message, old, new, request.rule.reason)
    message.due = None
    if config is None:
        manager.let_go(message)
        return
    manager.insert(message, new, config, ADMIN_REBIND)


def _log_rebind(
    manager: QueueManager, message: Message, old: str, queue: str, reason: str
) -> None:
    manager.journal.rebind(message, old_queue=old, queue=queue, reason=reason)
