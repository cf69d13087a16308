"""Why a message is (re)inserted into its scheduled queue: KumoMTA's insert context.

KumoMTA carries a short list of reasons (its ``InsertReason`` names) with every message it
puts into a scheduled queue: how the message got there (``Received``, ``Enumerated`` from
the spool, ``DueTimeWasReached``, ``AdminRebind``) followed by what held it back
(``MessageRateThrottle``, ``ThrottledByThrottleInsertReadyQueue``, ...). A reason equal to
the last one is not repeated. The list is what the ``requeue_message`` event sees as
``insert_context`` and what a ``Delayed`` record's text names.

A message that ends up waiting for a later due time gets a ``Delayed`` record unless its
only reason is ``Enumerated`` (one record per spooled message at every start says
nothing) or a ``TransientFailure`` record already explains the wait
(``LoggedTransientFailure``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kumocore.mail.scheduling import META_KEY

__all__ = [
    "ADMIN_REBIND",
    "DISPATCHER_DROP",
    "DUE_TIME_WAS_REACHED",
    "ENUMERATED",
    "LOGGED_TRANSIENT_FAILURE",
    "RECEIVED",
    "SOURCE_SUSPENDED",
    "Context",
    "logs_delay",
    "note",
    "text",
    "with_schedule",
]

#: A message's insert context: its reasons, oldest first.
Context = tuple[str, ...]

RECEIVED: Context = ("Received",)
ENUMERATED: Context = ("Enumerated",)
DUE_TIME_WAS_REACHED: Context = ("DueTimeWasReached",)
ADMIN_REBIND: Context = ("AdminRebind",)
LOGGED_TRANSIENT_FAILURE: Context = ("LoggedTransientFailure",)
#: A connection ended (an operator's abort) with the message still in its hands.
DISPATCHER_DROP: Context = ("DispatcherDrop",)
#: Taken from the ready queue of an auto-suspended egress source (re-routed around it).
SOURCE_SUSPENDED: Context = ("SourceIsUnhealthyAndSuspended",)


def note(context: Context, reason: str) -> Context:
    """``context`` with ``reason`` added (not when it is already the last one)."""
    return context if context and context[-1] == reason else (*context, reason)


def logs_delay(context: Context) -> bool:
    """Whether waiting with this context is worth a ``Delayed`` record."""
    return context != ENUMERATED and "LoggedTransientFailure" not in context


def with_schedule(context: Context, meta: Mapping[str, Any]) -> Context:
    """A just-received message that waits because of ``msg:set_scheduling`` says so
    (``ScheduledForLater``); any other context is left as it is."""
    if context == RECEIVED and META_KEY in meta:
        return note(context, "ScheduledForLater")
    return context


def text(context: Context) -> str:
    """The reasons as KumoMTA prints them in a record: ``Received, ScheduledForLater``."""
    return ", ".join(context)
