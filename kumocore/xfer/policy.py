"""``kumo.xfer.*``: a policy sends one message to another node, or takes it back.

KumoMTA's functions, for the ``requeue_message`` and ``rebind_message`` events: after
the handler, a message whose queue changed moves there (:mod:`kumocore.queue.requeue`,
:mod:`kumocore.queue.rebind`), so

* ``kumo.xfer.xfer(msg, target [, reason])`` names the transfer queue of ``target`` as
  the message's queue, its placement put aside (:mod:`.queue_info`), and logs
  ``AdminRebind`` when given a reason; a message already bound for ``target`` is left
  alone, one bound elsewhere is re-targeted;
* ``kumo.xfer.xfer_in_requeue(msg, target, insert_context, increment_attempts, delay
  [, reason])`` first sets the retry time the message keeps for the target: one more
  attempt on its queue's schedule (``increment_attempts``), else ``delay`` from now
  (seconds or a duration such as ``'5m'``), else within the next minute;
* ``kumo.xfer.cancel_xfer(msg [, reason])`` restores the placement (nothing to do for a
  message that is not bound for a transfer);
* ``kumo.xfer.get_xfer_target(msg)`` is the target URL, or nil.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kumocore.config.duration import duration_seconds
from kumocore.errors import ConfigError
from kumocore.mail.message import Message
from kumocore.mail.queue_name import message_queue_name
from kumocore.policy.policy_host import running
from kumocore.policy.policyfn import policy_function
from kumocore.xfer.queue_info import restore_info, save_info
from kumocore.xfer.wire import is_xfer_queue_name, normalise_target, target_of_queue
from kumocore.xfer.wire import xfer_queue_name as queue_for

if TYPE_CHECKING:
    from kumocore.policy.policy_host import PolicyHost

__all__ = ["make_xfer_functions"]


def _message(fn: str, value: Any) -> Message:
    if not isinstance(value, Message):
        raise ConfigError(f"kumo.xfer.{fn}: expected a message, got {value!r:.60}")
    return value


def _target(fn: str, value: Any) -> str:
    try:
        return normalise_target(value)
    except ValueError as exc:
        raise ConfigError(f"kumo.xfer.{fn}: target: {exc}") from None


def make_xfer_functions(runtime: PolicyHost) -> dict[str, Callable[..., Any]]:
    def log_rebind(fn: str, message: Message, old: str, reason: Any) -> None:
        if reason is None:
            return
        journal = running(runtime, f"kumo.xfer.{fn}").journal
        journal.rebind(message, old_queue=old, queue=message_queue_name(message),
                       reason=str(reason))  # fmt: skip

    def bind(fn: str, message: Message, target: str) -> str | None:
        """Re-bind to ``target``; the old queue name, or None when already bound there."""
        old = message_queue_name(message)
        new = queue_for(target)
        if old == new:
            return None
        if is_xfer_queue_name(old):
            restore_info(message)  # re-targeted: the placement saved the first time
        save_info(message)
        message.set_meta("queue", new)
        return old

    @policy_function(table=False)
    def get_xfer_target(msg: Any) -> str | None:
        """The target URL of the transfer queue ``msg`` is in, or nil."""
        return target_of_queue(message_queue_name(_message("get_xfer_target", msg)))

    @policy_function(table=False)
    def xfer(msg: Any, target: Any, reason: Any = None) -> None:
        """Bind ``msg`` for the node at ``target``; ``reason``: log ``AdminRebind``."""
        message = _message("xfer", msg)
        old = bind("xfer", message, _target("xfer", target))
        if old is not None:
            log_rebind("xfer", message, old, reason)

    @policy_function(table=False)
    async def xfer_in_requeue(msg: Any, target: Any, insert_context: Any = None,
                              increment_attempts: Any = False, delay: Any = None,
                              reason: Any = None) -> None:  # fmt: skip
        """:func:`xfer`, keeping a retry time: one attempt more on the queue's schedule,
        ``delay`` from now, or within a minute."""
        message = _message("xfer_in_requeue", msg)
        url = _target("xfer_in_requeue", target)
        if message_queue_name(message) == queue_for(url):
            return
        if is_xfer_queue_name(message_queue_name(message)):
            restore_info(message)
        await _retry_time(runtime, message, bool(increment_attempts), delay)
        old = bind("xfer_in_requeue", message, url)
        if old is not None:
            log_rebind("xfer_in_requeue", message, old, reason)

    @policy_function(table=False)
    def cancel_xfer(msg: Any, reason: Any = None) -> None:
        """Put ``msg`` back in the queue it was in before its transfer."""
        message = _message("cancel_xfer", msg)
        old = message_queue_name(message)
        if not is_xfer_queue_name(old):
            return
        restore_info(message)
        log_rebind("cancel_xfer", message, old, reason)

    return {"xfer.get_xfer_target": get_xfer_target, "xfer.xfer": xfer,
            "xfer.xfer_in_requeue": xfer_in_requeue, "xfer.cancel_xfer": cancel_xfer}  # fmt: skip


async def _retry_time(runtime: PolicyHost, message: Message, increment: bool, delay: Any) -> None:
    """The due time the message keeps for the target (KumoMTA's three cases)."""
    now = time.time()
    if increment:
        intake = running(runtime, "kumo.xfer.xfer_in_requeue").intake
        _, config = await intake.resolve_queue_config(message)
        message.num_attempts += 1
        wait = config.delay_for_attempt(message.num_attempts - 1) if config else 60.0
        message.due = now + wait
    elif delay is not None:
        try:
            message.due = now + duration_seconds(delay)
        except ValueError as exc:
            raise ConfigError(f"kumo.xfer.xfer_in_requeue: delay: {exc}") from None
    else:
        message.due = now + random.uniform(0, 60)
