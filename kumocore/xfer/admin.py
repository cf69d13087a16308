"""``POST /api/admin/xfer/v1`` and ``POST /api/admin/xfer/cancel/v1``.

``xfer/v1`` (KumoMTA's ``XferV1Request``: ``target``, ``reason``, and ``campaign``,
``tenant``, ``domain``, ``routing_domain`` or ``queue_names`` to select scheduled queues;
none selects every queue) moves each message waiting in a selected queue into the
transfer queue of ``target``: its placement is saved (:mod:`.queue_info`), its ``queue``
meta names the transfer queue, the change is spooled, an ``AdminRebind`` record is logged
and it is due at once (:mod:`.send` then delivers it). A message already in another
transfer queue is re-targeted, keeping the placement saved the first time.

``xfer/cancel/v1`` (``queue_name``, ``reason``) puts the messages waiting in a transfer
queue back where they were: placement restored, queue resolved by the policy as at
reception, ``AdminRebind`` logged, due at once. A message whose queue cannot be resolved
stays in the transfer queue.

Both act on the messages waiting in a scheduled queue when the request arrives (one being
posted right now is not touched: it arrives, or comes back on its retry), and answer
once done — KumoMTA answers first and works afterwards; here the answer carries
``moved``, a kumocore addition.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from aiohttp import web

from kumocore.admin.api_support import ADMIN_PREFIX, ApiError, json_errors, read_object
from kumocore.queue.admin import QueueRule, parse_rule
from kumocore.queue.insert_context import ADMIN_REBIND
from kumocore.xfer.queue_info import restore_info, save_info
from kumocore.xfer.send import xfer_queue_config
from kumocore.xfer.wire import is_xfer_queue_name, normalise_target, xfer_queue_name

if TYPE_CHECKING:
    from kumocore.admin.peers import PeerAnswer
    from kumocore.config import QueueConfig
    from kumocore.mail.message import Message
    from kumocore.node.runtime import Runtime
    from kumocore.node.services import Services
    from kumocore.queue.manager import QueueManager

__all__ = ["CANCEL_PATH", "XFER_PATH", "add_xfer_admin_routes", "merge_cancel"]

log = structlog.get_logger("kumocore.xfer")

#: Seconds until a message that could not be put back is tried in its transfer queue again.
RETRY_LATER = 10.0
XFER_PATH = f"{ADMIN_PREFIX}/xfer/v1"
CANCEL_PATH = f"{ADMIN_PREFIX}/xfer/cancel/v1"
_XFER_FIELDS = ("target", "reason", "campaign", "tenant", "domain", "routing_domain",
                "queue_names")  # fmt: skip


def _target(value: Any) -> str:
    try:
        return normalise_target(value)
    except ValueError as exc:
        raise ApiError(400, f"field 'target': {exc}") from None


#: Messages whose meta is saved together (one group commit of the spool).
BATCH = 256


def _claim(manager: QueueManager, queue_name: str) -> list[Message]:
    """Take the messages waiting in ``queue_name`` off the scheduler, so that none is
    routed while it is being moved (one already on its way is left alone)."""
    queue = manager.scheduled.get(queue_name)
    claimed = []
    for message_id in list(queue.ids) if queue is not None else []:
        message = manager.messages.get(message_id)
        if message is not None and manager.unschedule(message_id):
            claimed.append(message)
    return claimed


async def _save_all(manager: QueueManager, messages: list[Message]) -> None:
    """Spool the changed meta of ``messages``, concurrently (so the spool's group commit
    makes few synced writes). A failed write is logged: the message moves in memory
    anyway, and after a restart it is found where its spooled meta says — never lost."""
    store = manager.store
    if store is None:
        return
    results = await asyncio.gather(*(store.save_meta(m) for m in messages),
                                   return_exceptions=True)  # fmt: skip
    for message, result in zip(messages, results, strict=True):
        if isinstance(result, BaseException):
            log.error("xfer: meta not spooled", id=message.id, error=str(result))


async def _move(manager: QueueManager, message: Message, old: str, new: str,
                config: QueueConfig | None, reason: str) -> None:  # fmt: skip
    """Move a claimed ``message`` from ``old`` into ``new``, due at once."""
    manager.detach(message)
    manager.journal.rebind(message, old_queue=old, queue=new, reason=reason)
    message.due = None
    if config is None:  # restored into the null queue: discarded, as at reception
        await manager.forget(message)
        return
    manager.insert(message, new, config, ADMIN_REBIND)


async def xfer_matching(services: Services, rule: QueueRule, target: str) -> int:
    """Move the waiting messages of the queues ``rule`` selects to ``target``."""
    new = xfer_queue_name(target)
    config = xfer_queue_config(new)
    manager = services.queues
    moved = 0
    for name in [n for n in manager.scheduled if n != new and rule.matches(n)]:
        claimed = _claim(manager, name)
        for message in claimed:
            if not is_xfer_queue_name(name):
                save_info(message)
            message.set_meta("queue", new)
        for start in range(0, len(claimed), BATCH):
            batch = claimed[start : start + BATCH]
            await _save_all(manager, batch)
            for message in batch:
                await _move(manager, message, name, new, config, rule.reason)
        moved += len(claimed)
    log.info("xfer", target=target, reason=rule.reason, moved=moved)
    return moved


async def cancel_xfer_queue(services: Services, name: str, reason: str) -> int:
    """Put the waiting messages of the transfer queue ``name`` back where they were."""
    manager = services.queues
    moves: list[tuple[Message, str, QueueConfig | None]] = []
    for message in _claim(manager, name):
        saved = dict(message.meta), message.num_attempts, message.due
        try:
            restore_info(message)
            new, config = await services.intake.resolve_queue_config(message)
        except Exception as exc:  # QueueInfoError, or the policy failed: leave it be
            message.meta, message.num_attempts, message.due = saved
            manager.schedule(message, time.time() + RETRY_LATER)
            log.error("xfer cancel: message stays in its transfer queue", id=message.id,
                      error=str(exc))  # fmt: skip
            continue
        moves.append((message, new, config))
    for start in range(0, len(moves), BATCH):
        batch = moves[start : start + BATCH]
        await _save_all(manager, [m for m, _, _ in batch])
        for message, new, config in batch:
            await _move(manager, message, name, new, config, reason)
    log.info("xfer cancelled", queue=name, reason=reason, moved=len(moves))
    return len(moves)


class XferAdminApi:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def _services(self) -> Services:
        from kumocore.admin.api_support import services_of

        return services_of(self.runtime)

    @json_errors
    async def xfer(self, request: web.Request) -> web.StreamResponse:
        body = await read_object(request, _XFER_FIELDS)
        target = _target(body.pop("target", None))
        rule = parse_rule(body)
        moved = await xfer_matching(self._services(), rule, target)
        return web.json_response({"moved": moved})

    @json_errors
    async def cancel(self, request: web.Request) -> web.StreamResponse:
        body = await read_object(request, ("queue_name", "reason"))
        name, reason = body.get("queue_name"), body.get("reason")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "field 'queue_name' is required and must be a string")
        if not isinstance(reason, str) or not reason:
            raise ApiError(400, "field 'reason' is required and must be a non-empty string")
        if not is_xfer_queue_name(name):
            raise ApiError(400, f"{name} is not an xfer queue")
        services = self._services()
        if name not in services.queues.scheduled:
            raise ApiError(404, f"{name} is not a current scheduled queue")
        moved = await cancel_xfer_queue(services, name, reason)
        return web.json_response({"moved": moved})


def add_xfer_admin_routes(app: web.Application, runtime: Runtime) -> None:
    api = XferAdminApi(runtime)
    app.router.add_post(XFER_PATH, api.xfer)
    app.router.add_post(CANCEL_PATH, api.cancel)


def merge_cancel(local: web.Response, answers: list[PeerAnswer]) -> web.Response:
    """``serve --workers N``: the workers holding part of the transfer queue answer
    ``moved``, summed; a 404 only when none of them holds it."""
    bodies = [local.body] if local.status == 200 and isinstance(local.body, bytes) else []
    bodies += [a.body for a in answers if a.status == 200]
    if not bodies:
        return local
    return web.json_response({"moved": sum(int(orjson.loads(b).get("moved", 0)) for b in bodies)})
