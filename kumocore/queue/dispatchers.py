"""The open connections of a ready queue (KumoMTA's *dispatchers*), by session id.

Every connection task of an egress path (:meth:`kumocore.queue.path.EgressPath._connection`)
registers here for as long as it runs, under a fresh UUID: the ``session_id`` that
KumoMTA's ``inspect-ready-q`` lists and ``abort-ready-q-conn`` takes.

Aborting cancels the connection's task. That is safe for the messages it holds: the
delivery protocols give a message they took but did not hand to an outcome back to the
path (``EgressPath.put_back``: ``SmtpEgressPath._deliver_one``, ``custom_lua``'s
batches), which, for an aborted connection, sends it back to its scheduled queue as
KumoMTA's dispatcher drop does (``Delays.give_back``: ``requeue_message``, then
due in up to a minute, with a ``Delayed`` record); the path's connection slot is released
and the path woken as for any ending connection. As in KumoMTA, the interrupted attempt
is not counted and writes no outcome record: the MX never gave a reply to it. (A
connection cut after the MX took the final dot but before its reply arrived may deliver
that message twice, as with any lost connection.)

Each dispatcher also keeps what ``inspect-ready-q`` shows of it, as KumoMTA's
``DispatcherState`` does: its ``phase`` (KumoMTA's ``DispatcherPhase`` names), an optional
``detail``, when either last changed, and how many of its attempts were delivered,
failed transiently or failed for good. The delivery protocol sets the phase; the counts
come from the outcomes through :data:`current` — the dispatcher of the connection task
that is running, set by :meth:`Dispatchers.enter` — so both cost an attribute update or
two per message. The progress watchdog (:mod:`kumocore.queue.watchdog`) aborts a
connection the same way when its ``active_at`` falls too far behind, and sets ``cause``
so that its messages go back with the watchdog's ``Delayed`` record.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from kumocore.mail.response import Response

__all__ = ["Dispatcher", "Dispatchers", "current", "parse_session_id", "running"]

log = structlog.get_logger("kumocore.ready")


@dataclass(eq=False)
class Dispatcher:
    """One running connection task of a path."""

    task: asyncio.Task[None]
    session_id: uuid.UUID = field(default_factory=uuid.uuid4)
    #: When the task started (unix seconds), for listings.
    started_at: float = field(default_factory=time.time)
    #: Set once an operator (or the progress watchdog) asked for the abort (the task may
    #: still be unwinding).
    aborted: bool = False
    #: The progress watchdog's reply when it was the watchdog that aborted the task
    #: (:mod:`kumocore.queue.watchdog`): what its messages are given back with.
    cause: Response | None = None
    #: KumoMTA's ``DispatcherPhase``: Starting, Idle, ConnectionRateThrottled,
    #: MessageRateThrottled, AttemptingConnection, DeliveringMessage, Closing.
    phase: str = "Starting"
    #: What the phase is doing, e.g. ``send msg with 1 recip(s)`` (None: nothing said).
    detail: str | None = None
    #: When the connection last made progress (``time.monotonic()``): it entered a phase,
    #: or (:meth:`touch`) sent a command or opened a connection. The progress watchdog
    #: and ``time_in_current_phase`` read it.
    active_at: float = field(default_factory=time.monotonic)
    #: Until when (``time.monotonic()``) the connection waits by design: the path's
    #: backoff before a reconnect. The watchdog counts from here, not from ``active_at``
    #: (a backoff of minutes is no stall).
    waiting_until: float = 0.0
    #: Outcomes of the attempts made over this connection, by kind.
    delivered: int = 0
    transfailed: int = 0
    failed: int = 0

    def enter_phase(self, phase: str, detail: str | None = None) -> None:
        self.phase, self.detail, self.active_at = phase, detail, time.monotonic()

    def touch(self) -> None:
        """Progress within the phase (a command sent, a reply read): as KumoMTA's."""
        self.active_at = time.monotonic()


#: The dispatcher of the running connection task (None outside one). Set in the task's
#: own context by :meth:`Dispatchers.enter`, so the outcomes can count an attempt for the
#: connection that made it without being handed the dispatcher.
current: contextvars.ContextVar[Dispatcher | None] = contextvars.ContextVar(
    "kumocore_dispatcher", default=None
)


def running() -> Dispatcher:
    """The dispatcher of the running connection task; outside one (a protocol's ``serve``
    called directly), a fresh one nobody lists, so callers need not check."""
    dispatcher = current.get()
    if dispatcher is None:
        dispatcher = Dispatcher(asyncio.current_task())  # type: ignore[arg-type]
    return dispatcher


class Dispatchers:
    """The running connection tasks of one egress path."""

    __slots__ = ("_open", "queue_name")

    def __init__(self, queue_name: str) -> None:
        self.queue_name = queue_name
        self._open: dict[uuid.UUID, Dispatcher] = {}

    def enter(self) -> Dispatcher:
        """Register the calling task (a connection task that is starting)."""
        dispatcher = Dispatcher(asyncio.current_task())  # type: ignore[arg-type]
        self._open[dispatcher.session_id] = dispatcher
        current.set(dispatcher)
        # Debug level: with many connections a second this is noise, but an operator
        # hunting one stuck connection turns it on (set_diagnostic_log_filter) to get
        # the session id that abort-ready-q-conn takes.
        log.debug("ready queue connection started", queue=self.queue_name,
                  session_id=str(dispatcher.session_id))  # fmt: skip
        return dispatcher

    def leave(self, dispatcher: Dispatcher) -> None:
        """The connection task is ending (its ``finally``): it can no longer be aborted."""
        self._open.pop(dispatcher.session_id, None)
        # Tasks this one starts from now on (the path's next pump) are no connection.
        current.set(None)

    def __iter__(self) -> Iterator[Dispatcher]:
        return iter(list(self._open.values()))

    def __len__(self) -> int:
        return len(self._open)

    def abort(self, session_id: uuid.UUID) -> bool:
        """Cancel the connection task ``session_id``; False when no such task runs.

        Asking twice for the same task (it is still unwinding) succeeds again, as the
        operator's intent holds, but does not cancel it again: a second cancel would
        interrupt the first one's clean-up (QUIT, closing the socket, releasing the slot).
        """
        dispatcher = self._open.get(session_id)
        if dispatcher is None or dispatcher.task.done():
            return False
        if not dispatcher.aborted:
            dispatcher.aborted = True
            dispatcher.task.cancel(f"aborted by operator (session {session_id})")
        return True


def parse_session_id(value: object) -> uuid.UUID:
    """A ``session_id`` field: a UUID in any of Python's accepted spellings.

    Raises ValueError with a message fit for the API's 400 answer.
    """
    if not isinstance(value, str):
        raise ValueError("field 'session_id' is required and must be a UUID string")
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise ValueError(f"field 'session_id' is not a UUID: {value!r}") from exc
