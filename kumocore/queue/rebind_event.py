"""The ``rebind_message`` event of an operator's rebind (``trigger_rebind_event``).

Instead of merging the request's ``data`` into each message's meta, the rebind hands the
message and a copy of ``data`` to the policy, which decides what changes (meta, the
recipient, headers). As in KumoMTA (``do_rebind``), whatever the handler did is kept and
the message is re-resolved afterwards even when the handler failed — or when the policy
registers none, which KumoMTA reports as an error ("has not been registered").

A waiting message's body usually lives in the data spool only (it is released from memory
once deferred): it is read back for the handler, so that ``msg:append_header`` edits the
real message, written back when the handler changed it, and released again otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from kumocore.mail.message import Message
    from kumocore.queue.manager import QueueManager

log = structlog.get_logger("kumocore.queue")


def warn_without_handler(manager: QueueManager, reason: str) -> bool:
    """Log (once per rebind, where KumoMTA logs once per message) that the event has no
    handler; True when there is one."""
    if manager.hooks.implemented("rebind_message"):
        return True
    log.error("rebind: trigger_rebind_event is set but the policy registers no "
              "rebind_message handler; messages are re-resolved without changes",
              reason=reason)  # fmt: skip
    return False


async def apply_rebind_event(manager: QueueManager, message: Message, data: dict[str, str]) -> bool:
    """Run ``rebind_message`` for ``message``; True when its meta or envelope changed and
    still has to be saved (a changed body is saved here, meta included)."""
    released = await _load_body(manager, message)
    meta_before, data_before = message.meta_bytes(), message.data
    try:
        await manager.hooks.rebind_message(message, dict(data))  # a copy per message
    except Exception as exc:  # KumoMTA: logged, and the rebind goes on
        log.error("rebind_message failed; the message is re-resolved as it is",
                  id=message.id, error=str(exc))  # fmt: skip
    body_changed = message.data != data_before
    store = manager.store
    if body_changed and store is not None:
        await store.save(message)  # data and meta, durable before it moves on
    if released and (store is None or not store.bodies_in_memory):
        message.release_data()  # back on disk only, as it was
    return not body_changed and message.meta_bytes() != meta_before


async def _load_body(manager: QueueManager, message: Message) -> bool:
    """Read a released body back from the spool; True when it was released."""
    if message.data or not message.size:
        return False
    body = await manager.load_data(message)
    if body is None:
        return False  # not spooled (any more): the handler sees what there is
    message.data = body
    return True
