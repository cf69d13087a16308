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
the event loop back every :data:`YIELD_EVERY` seconds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import structlog

from kumocore.errors import ConfigError
from kumocore.mail.queue_name import message_queue_name
from kumocore.queue.insert_context import ADMIN_REBIND
from kumocore.queue.rebind_event import apply_rebind_event, warn_without_handler

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

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
#: What happened to one message: moved to another queue, flushed in place, or neither.
Outcome = Literal["moved", "flushed"] | None


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
    :meth:`~kumocore.reception.intake.Intake.resolve_queue_config`, which caches them)."""
    if request.trigger_rebind_event:
        warn_without_handler(manager, request.rule.reason)
    counts = {"moved": 0, "flushed": 0}
    slice_ends = time.perf_counter() + YIELD_EVERY
    for queue in [q for q in manager.scheduled.values() if request.rule.matches(q.name)]:
        for message_id in list(queue.ids):
            if time.perf_counter() >= slice_ends:
                await asyncio.sleep(0)  # let the worker's other clients in
                slice_ends = time.perf_counter() + YIELD_EVERY
            outcome = await _rebind_one(manager, queue.name, message_id, request, resolve)
            if outcome is not None:
                counts[outcome] += 1
    log.info("rebind", reason=request.rule.reason, **counts)
    return counts


async def _rebind_one(manager: QueueManager, queue_name: str, message_id: str,
                      request: RebindRequest, resolve: ResolveQueue) -> Outcome:  # fmt: skip
    message = manager.messages.get(message_id)
    due = manager.scheduler.due_time(message_id)
    if message is None or due is None:
        return None  # on its way already (ready queue or in flight)
    manager.unschedule(message_id)  # see the module's docstring
    try:
        if request.trigger_rebind_event:
            changed = await apply_rebind_event(manager, message, request.data)
        else:
            for key, value in request.data.items():
                message.set_meta(key, value)
            changed = bool(request.data)
        queue = manager.queue_of(message)
        if queue is None or queue.name != queue_name:
            return None  # it left meanwhile (an admin bounce...): nothing more to do
        if message_queue_name(message) != queue_name:
            await _move(manager, message, queue_name, request, resolve)
            return "moved"
        if changed and manager.store is not None:
            await manager.store.save_meta(message)
    except Exception as exc:  # KumoMTA: logged; the message stays in its queue
        log.error("rebind failed; the message stays where it was", id=message_id,
                  queue=queue_name, error=str(exc))  # fmt: skip
        manager.schedule(message, due)
        return None
    manager.schedule(message, time.time() if request.always_flush else due)
    return "flushed" if request.always_flush else None


async def _move(manager: QueueManager, message: Message, old: str,
                request: RebindRequest, resolve: ResolveQueue) -> None:  # fmt: skip
    """Move ``message`` (out of the scheduler) into the queue its meta now names."""
    new, config = await resolve(message)
    if manager.store is not None:
        await manager.store.save_meta(message)
    manager.detach(message)
    if not request.suppress_logging:
        _log_rebind(manager, message, old, new, request.rule.reason)
    message.due = None
    if config is None:  # rebound into the null queue: discarded, as at reception
        await manager.forget(message)
        return
    manager.insert(message, new, config, ADMIN_REBIND)


def _log_rebind(
    manager: QueueManager, message: Message, old: str, queue: str, reason: str
) -> None:
    manager.journal.rebind(message, old_queue=old, queue=queue, reason=reason)
