"""The progress watchdog of an egress path's connections (KumoMTA's dispatcher watchdog).

Every SMTP command is bounded by its own timeout, but not everything a connection waits
for is: a ``custom_lua`` sender that never returns, an await that never completes. A
connection marks its progress as it goes — each phase it enters (connecting, idle,
delivering a message, closing), each address it tries, each command it sends and each
reply it reads (:meth:`~kumocore.queue.dispatchers.Dispatcher.touch`) — by setting one
timestamp. A connection that makes none for ``dispatcher_progress_watchdog_timeout``
(:func:`threshold`) is aborted: its task is cancelled, the message it holds goes back to
its scheduled queue with a ``Delayed`` record whose response names the watchdog
(``451 4.4.1 dispatcher watchdog aborted task; phase=... detail=... session=... age=...
time_in_phase=...``, the record's ``session_id`` that of the connection), and
``dispatcher_watchdog_aborted_total{service=...}`` counts it.

An idle connection waits for its next message up to its path's ``idle_timeout``; it gets
that long on top of the threshold, so that a short watchdog never aborts a healthy path
that merely ran out of mail (KumoMTA's would). A ``custom_lua`` batch gathers in that
phase too: a ``max_batch_latency`` above the threshold wants the option set explicitly,
as in KumoMTA.

One timer per path (:class:`Watchdog`), not one per connection or message: armed when a
connection starts, it runs when the first connection could be overdue, aborts those that
are, and arms itself for the next one; with no connection left it stops. While some
connection idles it runs at least once a threshold, so that one that leaves the idle
phase and then stops is caught in time.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Protocol

import structlog

from kumocore.config.duration import humantime
from kumocore.logs.record import RecordType
from kumocore.logs.record_builder import Subject, build_record
from kumocore.mail.response import Response
from kumocore.queue.insert_context import DISPATCHER_DROP, LOGGED_TRANSIENT_FAILURE

if TYPE_CHECKING:
    from kumocore.config import EgressPathConfig
    from kumocore.mail.message import Message
    from kumocore.queue.dispatchers import Dispatcher, Dispatchers
    from kumocore.queue.egress import EgressShared, PathKey
    from kumocore.queue.egress import PathView as AnyPath


class PathView(Protocol):
    """What giving messages back reads of an egress path (its ``PathQueue`` part), named
    here so that this module, which the path modules import, does not import them."""

    @property
    def key(self) -> PathKey: ...
    @property
    def config(self) -> EgressPathConfig: ...
    @property
    def shared(self) -> EgressShared: ...


class WatchedPath(PathView, Protocol):
    """What the watchdog reads of an ``EgressPath``."""

    @property
    def dispatchers(self) -> Dispatchers: ...

__all__ = ["METRIC", "WEDGED", "Watchdog", "derived_threshold", "give_back_wedged", "threshold"]

log = structlog.get_logger("kumocore.ready")

METRIC = "dispatcher_watchdog_aborted_total"
#: The derived threshold's floor (seconds).
FLOOR = 60.0
#: The derived threshold of protocols that run user code or call other services, which
#: have no per-operation timeout of their own (seconds).
USER_CODE = 600.0
#: Ready-queue suffixes (before any ``:``) of the SMTP family: their commands are bounded.
_SMTP_FAMILY = ("smtp_client", "xfer")
_USER_CODE = ("lua", "defersmtpinject", "httpinject")
#: ``delivery_protocol`` of a record, by ready-queue suffix (KumoMTA's names).
_LOG_NAMES = {
    "lua": "Lua",
    "maildir": "Maildir",
    "xfer": "Xfer",
    "defersmtpinject": "DeferredSmtpInjection",
    "httpinject": "HttpInjectionGenerator",
}
#: A watchdog-aborted message's insert context: the Delayed record is written at once.
WEDGED = (*DISPATCHER_DROP, *LOGGED_TRANSIENT_FAILURE)


def derived_threshold(config: EgressPathConfig, protocol: str) -> float:
    """The threshold when the option is nil: for SMTP, twice the longest command
    timeout, at least a minute; 10 minutes for user code; a minute otherwise."""
    kind = protocol.partition(":")[0]
    if kind in _SMTP_FAMILY:
        longest = max(config.mail_from_timeout, config.rcpt_to_timeout, config.data_timeout,
                      config.data_dot_timeout)  # fmt: skip
        return max(2 * float(longest), FLOOR)
    return USER_CODE if kind in _USER_CODE else FLOOR


def threshold(path: WatchedPath) -> float:
    """The path's effective ``dispatcher_progress_watchdog_timeout`` (seconds)."""
    configured = path.config.dispatcher_progress_watchdog_timeout
    if configured is not None:
        return float(configured)
    return derived_threshold(path.config, path.key.protocol)


def service(path: AnyPath) -> str:
    """KumoMTA's ``service`` label of a ready queue: ``<protocol>:<queue name>``."""
    return f"{path.key.protocol_kind}:{path.key.name}"


class Watchdog:
    """The one timer that watches the connections of a path (see the module doc)."""

    __slots__ = ("_at", "_path", "_timer")

    def __init__(self, path: WatchedPath) -> None:
        self._path = path
        self._timer: asyncio.TimerHandle | None = None
        self._at = 0.0  # when the timer runs (time.monotonic())

    def watch(self) -> None:
        """A connection started: make sure the timer runs by the time it could be due."""
        self._arm(time.monotonic() + threshold(self._path))

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            if self._at <= at:
                return
            self._timer.cancel()
        self._at = at
        # A delay, not loop.call_at: the loop's clock (uvloop's) need not be monotonic()'s.
        delay = max(at - time.monotonic(), 0.0)
        self._timer = asyncio.get_running_loop().call_later(delay, self._check)

    def _check(self) -> None:
        self._timer = None
        path = self._path
        limit = threshold(path)
        idle = float(path.config.idle_timeout)
        now = time.monotonic()
        soonest: float | None = None
        for dispatcher in path.dispatchers:
            if dispatcher.aborted or dispatcher.task.done():
                continue  # leaving already
            due = max(dispatcher.active_at, dispatcher.waiting_until) + limit
            if dispatcher.phase == "Idle":
                # Should it leave Idle now and then stop, it is due a threshold from now.
                due, check = due + idle, min(due + idle, now + limit)
            else:
                check = due
            if due <= now:
                self._abort(dispatcher, limit, now)
            elif soonest is None or check < soonest:
                soonest = check
        if soonest is not None:
            self._arm(soonest)

    def _abort(self, dispatcher: Dispatcher, limit: float, now: float) -> None:
        path = self._path
        stalled = now - dispatcher.active_at
        age = max(time.time() - dispatcher.started_at, 0.0)
        dispatcher.cause = wedged_response(dispatcher, age, stalled)
        log.error("dispatcher progress watchdog: aborting task that has not advanced for "
                  f"{stalled:.3f}s (threshold {limit:g}s)", queue=path.key.name,
                  session_id=str(dispatcher.session_id), phase=dispatcher.phase,
                  detail=dispatcher.detail, time_in_phase=stalled, age=age)  # fmt: skip
        path.dispatchers.abort(dispatcher.session_id)
        path.shared.watchdog_aborts[service(path)] += 1


def _nanos(seconds: float) -> int:
    return max(int(seconds * 1e9), 0)


def wedged_response(dispatcher: Dispatcher, age: float, stalled: float) -> Response:
    """KumoMTA's reply for a message of a connection the watchdog aborted."""
    detail = (
        "None" if dispatcher.detail is None else json.dumps(dispatcher.detail, ensure_ascii=False)
    )
    content = (
        f"dispatcher watchdog aborted task; phase={dispatcher.phase} detail={detail} "
        f"session={dispatcher.session_id} age={humantime(_nanos(age))} "
        f"time_in_phase={humantime(_nanos(stalled))}"
    )
    return Response.parse(451, f"4.4.1 {content}")


def give_back_wedged(path: PathView, dispatcher: Dispatcher, messages: list[Message]) -> None:
    """The messages a watchdog-aborted connection held go back to their scheduled queues,
    each after its ``Delayed`` record (KumoMTA writes it at once, naming the ready queue,
    the source and the connection's session) as a dispatcher drop whose failure is logged
    already: ``requeue_message`` sees the watchdog's reply, no attempt is counted, and
    the message is due again in 0 to 59 s."""
    shared = path.shared
    response = dispatcher.cause
    give_back = shared.give_back
    if response is None or give_back is None:
        return
    journal = shared.outcomes.journal
    for message in messages:
        if journal.logs is not None:
            queue = shared.queue_of(message)
            record = build_record(
                RecordType.Delayed, Subject.of(message, journal.header_names),
                nodeid=journal.nodeid, queue=message.queue_name() if queue is None else queue.name,
                site=path.key.name, response=response,
                egress_pool=queue.pool_name if queue is not None else None,
                egress_source=path.key.source, provider_name=path.config.provider_name,
                delivery_protocol=_LOG_NAMES.get(path.key.protocol_kind, "ESMTP"),
                session_id=str(dispatcher.session_id))  # fmt: skip
            journal.logs.submit(record, message)
        give_back(message, WEDGED, response)
