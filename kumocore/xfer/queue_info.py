"""A message's scheduling, put aside while it waits in a transfer queue.

KumoMTA moves a message into its transfer queue by saving what placed and timed it in
its old queue — the ``queue``, ``routing_domain``, ``tenant`` and ``campaign`` meta, its
schedule, attempt count and due time — under the meta key ``xfer_queue_info``, and
clearing those. The receiving node restores them, so the message lands in the same
scheduled queue with the same retry state; a cancelled transfer restores them too.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from kumocore.logs.timestamps import rfc3339
from kumocore.mail.scheduling import META_KEY as SCHEDULE_KEY
from kumocore.mail.scheduling import Schedule, ScheduleError

if TYPE_CHECKING:
    from kumocore.mail.message import Message

__all__ = ["INFO_KEY", "QUEUE_KEYS", "QueueInfoError", "restore_info", "save_info"]

INFO_KEY = "xfer_queue_info"
QUEUE_KEYS = ("queue", "routing_domain", "tenant", "campaign")


class QueueInfoError(ValueError):
    """``xfer_queue_info`` is not what a sender saves (the endpoint answers 400)."""


def save_info(message: Message) -> None:
    """Put the message's queue placement aside in ``xfer_queue_info`` and clear it."""
    info: dict[str, Any] = {k: message.meta[k] for k in QUEUE_KEYS
                            if isinstance(message.meta.get(k), str)}  # fmt: skip
    schedule = message.get_scheduling()
    if schedule is not None:
        info["schedule"] = schedule
    info["num_attempts"] = message.num_attempts
    if message.due is not None:
        info["due"] = rfc3339(message.due)
    message.set_meta(INFO_KEY, info)
    for key in QUEUE_KEYS:
        message.meta.pop(key, None)
    message.set_scheduling(None)
    message.due = None


def restore_info(message: Message) -> None:
    """Undo :func:`save_info` (a message without ``xfer_queue_info`` is left as it is).

    Raises :class:`QueueInfoError` when the saved value has the wrong shape; the message
    is then unchanged."""
    info = message.meta.get(INFO_KEY)
    if info is None:
        return
    if not isinstance(info, dict):
        raise QueueInfoError(f"meta {INFO_KEY!r} must be an object, got {info!r:.80}")
    placement = {k: info.get(k) for k in QUEUE_KEYS}
    if not all(v is None or isinstance(v, str) for v in placement.values()):
        raise QueueInfoError(f"meta {INFO_KEY!r}: queue, routing_domain, tenant and "
                             "campaign must be strings")  # fmt: skip
    attempts = info.get("num_attempts", 0)
    if type(attempts) is not int or attempts < 0:
        raise QueueInfoError(f"meta {INFO_KEY!r}: num_attempts must be a whole number")
    due = _due(info.get("due"))
    schedule = info.get("schedule")
    if schedule is not None and not isinstance(schedule, dict):
        raise QueueInfoError(f"meta {INFO_KEY!r}: schedule must be an object")
    if schedule is not None:
        try:
            Schedule.parse(schedule)
        except ScheduleError as exc:
            raise QueueInfoError(f"meta {INFO_KEY!r}: schedule: {exc}") from None
    for key, value in placement.items():
        if value is None:
            message.meta.pop(key, None)
        else:
            message.meta[key] = value
    message.num_attempts = attempts
    message.due = due
    message.meta.pop(SCHEDULE_KEY, None)
    if schedule is not None:
        message.set_scheduling(schedule)
    del message.meta[INFO_KEY]


def _due(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise QueueInfoError(f"meta {INFO_KEY!r}: due must be an RFC 3339 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueueInfoError(f"meta {INFO_KEY!r}: due {value!r:.60} is not RFC 3339") from None
    if moment.tzinfo is None:
        raise QueueInfoError(f"meta {INFO_KEY!r}: due {value!r:.60} has no time zone")
    return moment.timestamp()
