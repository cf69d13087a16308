"""Operator actions on waiting messages: KumoMTA's rebind (and so "retry now"), and
listing a scheduled queue's messages.

``rebind`` selects scheduled queues by campaign/tenant/domain/routing_domain (as bounce
and suspend rules do), merges ``data`` into the meta of each message waiting there, and
re-resolves its queue: a message whose queue changed moves to the new queue, is due at
once and is logged as ``AdminRebind``; one whose queue did not change keeps its due time
unless ``always_flush`` asks for immediate delivery — which is how ``kumocore queue
flush`` retries deferred mail now, like Postfix's ``postqueue -f``.

Only messages waiting in the scheduler are touched: ones already in a ready queue or
being delivered are on their way, as in KumoMTA. The ``rebind_message`` event
(``trigger_rebind_event``) is not supported yet and is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import structlog

from kumocore.errors import ConfigError
from kumocore.mail.queue_name import message_queue_name
from kumocore.queue.insert_context import ADMIN_REBIND

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from kumocore.config import QueueConfig
    from kumocore.mail.message import Message
    from kumocore.queue.admin import QueueRule
    from kumocore.queue.manager import QueueManager

log = structlog.get_logger("kumocore.queue")

_REBIND_FIELDS = {"campaign", "tenant", "domain", "routing_domain", "reason", "data",
                  "always_flush", "suppress_logging", "trigger_rebind_event"}  # fmt: skip


#: A message's (possibly new) queue name and configuration (None: the null queue).
ResolveQueue: TypeAlias = "Callable[[Message], Awaitable[tuple[str, QueueConfig | None]]]"


@dataclass(frozen=True)
class RebindRequest:
    """A validated KumoMTA ``RebindV1Request``."""

    rule: QueueRule  # the matching criteria (and reason)
    data: dict[str, str]
    always_flush: bool
    suppress_logging: bool


def parse_rebind(body: dict[str, Any]) -> RebindRequest:
    from kumocore.queue.admin import parse_rule

    unknown = sorted(set(body) - _REBIND_FIELDS)
    if unknown:
        allowed = ", ".join(sorted(_REBIND_FIELDS))
        raise ConfigError(f"unknown field {unknown[0]!r}; allowed: {allowed}")
    if body.get("trigger_rebind_event"):
        raise ConfigError("trigger_rebind_event: the rebind_message event is not supported by "
                          "kumocore yet; use data to set meta values")  # fmt: skip
    data = body.get("data", {})
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):  # fmt: skip
        raise ConfigError("field 'data' must be an object of string keys and string values")
    for flag in ("always_flush", "suppress_logging"):
        if not isinstance(body.get(flag, False), bool):
            raise ConfigError(f"field {flag!r} must be a boolean")
    names = ("campaign", "tenant", "domain", "routing_domain", "reason")
    criteria: dict[str, Any] = {k: body[k] for k in names if k in body}
    return RebindRequest(parse_rule(criteria), data, bool(body.get("always_flush", False)),
                         bool(body.get("suppress_logging", False)))  # fmt: skip


async def rebind(
    manager: QueueManager, request: RebindRequest, resolve: ResolveQueue
) -> dict[str, int]:
    """Apply ``request``; returns how many messages moved and how many were flushed.

    ``resolve`` gives a message's new queue and its configuration (the intake's
    :meth:`~kumocore.reception.intake.Intake.resolve_queue_config`, which caches them)."""
    moved = flushed = 0
    now = time.time()
    for queue in [q for q in manager.scheduled.values() if request.rule.matches(q.name)]:
        for message_id in list(queue.ids):
            message = manager.messages.get(message_id)
            if message is None or message_id not in manager.scheduler:
                continue  # on its way already (ready queue or in flight)
            for key, value in request.data.items():
                message.set_meta(key, value)
            if await _move_if_requeued(manager, message, queue.name, request, resolve):
                moved += 1
            elif request.always_flush:
                manager.schedule(message, now)
                flushed += 1
    log.info("rebind", reason=request.rule.reason, moved=moved, flushed=flushed)
    return {"moved": moved, "flushed": flushed}


async def _move_if_requeued(manager: QueueManager, message: Message, old: str,
                            request: RebindRequest, resolve: ResolveQueue) -> bool:  # fmt: skip
    """Move ``message`` when its meta now names another queue; False if it stays."""
    if message_queue_name(message) == old:
        if request.data and manager.store is not None:
            await manager.store.save_meta(message)
        return False
    new, config = await resolve(message)
    if manager.store is not None:
        await manager.store.save_meta(message)
    manager.unschedule(message.id)
    manager.detach(message)
    if not request.suppress_logging:
        _log_rebind(manager, message, old, new, request.rule.reason)
    message.due = None
    if config is None:  # rebound into the null queue: discarded, as at reception
        await manager.forget(message)
        return True
    manager.insert(message, new, config, ADMIN_REBIND)
    return True


def _log_rebind(
    manager: QueueManager, message: Message, old: str, queue: str, reason: str
) -> None:
    manager.journal.rebind(message, old_queue=old, queue=queue, reason=reason)


def queue_messages(manager: QueueManager, queue_name: str, *, limit: int | None,
                   want_body: bool) -> dict[str, Any]:  # fmt: skip
    """KumoMTA's ``InspectSchedQV1Response`` for one scheduled queue (body not loaded)."""
    from kumocore.logs.timestamps import rfc3339

    queue = manager.scheduled.get(queue_name)
    ids = sorted(queue.ids, key=lambda i: manager.messages[i].created) if queue else []
    messages = []
    for message_id in ids[: limit if limit is not None else len(ids)]:
        message = manager.messages[message_id]
        due = manager.scheduler.due_time(message_id)
        entry: dict[str, Any] = {
            "sender": message.sender.email, "recipient": message.recipient.email,
            "meta": dict(message.meta), "num_attempts": message.num_attempts,
            "created": rfc3339(message.created), "scheduling": {},
            "due": rfc3339(due) if due is not None else None,
        }  # fmt: skip
        if want_body and message.data:
            entry["data"] = message.data.decode("utf-8", errors="replace")
        messages.append({"id": message_id, "message": entry})
    waiting = queue.waiting if queue else 0
    return {
        "queue_name": queue_name, "num_scheduled": waiting, "delayed_metric": waiting,
        "now": rfc3339(time.time()), "last_changed": rfc3339(time.time()),
        "queue_config": queue.config.to_dict() if queue else {}, "messages": messages,
    }  # fmt: skip
