"""KumoMTA's deferred SMTP injection: the queue behind ``deferred_queue = true``.

A listener with ``deferred_queue = true`` does not run ``smtp_server_message_received``:
it spools each message into the scheduled queue :data:`DEFERRED_QUEUE_NAME` and answers
250 at once (:mod:`kumocore.reception.smtp.receive`), so the client never waits for the
policy. This module is the other half, KumoMTA's ``DeferredSmtpInjection`` protocol.

The queue's configuration is built in (:func:`deferred_queue_config`; the policy's
``get_queue_config`` is not asked): a one-minute base retry interval with the default
exponential backoff, for the default ``max_age`` of a week. Its messages go to one ready
queue, ``unspecified->deferred_smtp_inject.kumomta.internal@defersmtpinject``, an
:class:`~kumocore.queue.path.EgressPath` whose "connections" each run the
``smtp_server_message_deferred_inject`` event for one message at a time. So the number
of handler runs at once is the path's ``connection_limit`` — from
``get_egress_path_config('deferred_smtp_inject.kumomta.internal', 'unspecified', ...)``,
as KumoMTA's shaping note configures it — and ``max_ready``, the message rates and the
ready-queue admin tools apply to it as to any path.

Per message (as KumoMTA's ``DeferredSmtpInjectionDispatcher``): the ``queue`` meta is
cleared and the event runs with the message and a connection meta made from a copy of its
meta (changes to it are not kept). Then:

* success: the message is saved (the handler may have signed it or changed its meta),
  logged as ``DeferredInjectionRebind`` (250 ``ok``) and inserted into the queue its
  meta and recipient now name, with that queue's ``get_queue_config``;
* ``kumo.reject`` with a 5xx: ``Bounce``, and the message leaves the spool;
* any other error, or a failure to re-queue it: ``TransientFailure`` (450 with the error,
  or the rejection's code and text), the ``queue`` meta set back, and a retry on this
  queue's schedule. The body the handler may have edited is dropped from memory: the
  spool holds it as received, so a retry does not sign it twice.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.config.protocols import DeliveryProtocol
from kumocore.delivery.tls import SessionInfo
from kumocore.errors import Rejection
from kumocore.logs.journal import Attempt
from kumocore.logs.record import RecordType
from kumocore.mail import internal_responses
from kumocore.mail.response import Response
from kumocore.policy.refresh import Freshness
from kumocore.queue.dispatchers import running
from kumocore.queue.egress import PathKey
from kumocore.queue.errors import RoutingError
from kumocore.queue.insert_context import RECEIVED
from kumocore.queue.owners import DeferredOwner
from kumocore.queue.owners import ResolveQueue as ResolveQueue
from kumocore.queue.path import EgressPath

if TYPE_CHECKING:
    from kumocore.config import QueueConfig
    from kumocore.mail.message import Message
    from kumocore.queue.slots import Slot

__all__ = [
    "DEFERRED_QUEUE_NAME",
    "DeferredInjectPath",
    "DeferredInjectProtocol",
    "deferred_path_for",
    "deferred_queue_config",
    "open_internal_path",
]

log = structlog.get_logger("kumocore.deferred_inject")

#: The scheduled queue a ``deferred_queue`` listener puts its messages in (KumoMTA's name).
DEFERRED_QUEUE_NAME = "deferred_smtp_inject.kumomta.internal"
#: KumoMTA's metrics name of the protocol, and its ready-queue suffix.
SUFFIX = "defersmtpinject"
#: What the records of this queue say in ``delivery_protocol``.
LOG_NAME = "DeferredSmtpInjection"
#: The egress source of its ready queue (KumoMTA uses no source: ``unspecified``).
SOURCE = "unspecified"
#: KumoMTA's hard-coded base retry interval of the queue.
RETRY_INTERVAL = "1m"
#: What the dispatcher shows while the event runs (``inspect-ready-q``), as KumoMTA.
DETAIL = "deferred_smtp_inject"

_SESSION = SessionInfo(delivery_protocol=LOG_NAME)
#: The meta key naming a message's queue outright (cleared for the handler, as KumoMTA).
QUEUE_META = "queue"


@dataclass(frozen=True)
class DeferredInjectProtocol(DeliveryProtocol):
    """The protocol of :data:`DEFERRED_QUEUE_NAME` (never in a policy's queue config)."""


PROTOCOL = DeferredInjectProtocol(name=SUFFIX, suffix=SUFFIX, log_name=LOG_NAME)
_config: QueueConfig | None = None


def deferred_queue_config() -> QueueConfig:
    """The built-in configuration of :data:`DEFERRED_QUEUE_NAME` (made once)."""
    global _config
    if _config is None:
        from kumocore.config import QueueConfig

        base = QueueConfig.from_options({"retry_interval": RETRY_INTERVAL})
        _config = dataclasses.replace(base, protocol=PROTOCOL)
    return _config


def synthesized_conn_meta(message: Message) -> dict[str, Any]:
    """The event's ``conn_meta``: a copy of the message's meta (which holds what the
    connection's meta held at reception), so the handler's changes to it are not kept."""
    return copy.deepcopy(message.meta)


class DeferredInjectPath(EgressPath):
    """The ready queue of :data:`DEFERRED_QUEUE_NAME`: each connection runs the event."""

    owner: DeferredOwner
    #: What the dispatcher shows while a message is handled (``inspect-ready-q``).
    detail = DETAIL

    async def serve(self, slot: Slot, epoch: int) -> None:
        dispatcher = running()
        if not self.messages or not await self.throttles.connection_rate(self.config):
            return
        idle = float(self.config.idle_timeout)
        handled = 0
        while handled < self.config.max_deliveries_per_connection:
            dispatcher.enter_phase("Idle")
            message = await self.next_message(idle, slot)
            if message is None:
                return
            pending = [message]  # goes back to the queue if this connection ends first
            try:
                if not await self.throttles.message_rate(self.config):
                    return
                dispatcher.enter_phase("DeliveringMessage", self.detail)
                await self._process(message)
                pending.clear()
            finally:
                self.put_back(pending)
            handled += 1
            await self.throttles.keep(slot)

    async def _process(self, message: Message) -> None:
        if not await self._load_body(message):
            return
        message.meta.pop(QUEUE_META, None)
        try:
            response = await self._run_handler(message)
            if response is None:
                response = await self._rebind(message)
        except BaseException:
            # Cancelled (an aborted connection, shutdown): the message goes back as it
            # was, to be handled again (the spool never saw the handler's changes).
            _restore(message)
            raise
        if response is not None:
            self._failed(message, response)

    async def _run_handler(self, message: Message) -> Response | None:
        """Run the event; the response of a failure, None when it returned."""
        try:
            await self.shared.hooks.smtp_server_message_deferred_inject(
                message, synthesized_conn_meta(message)
            )
        except Rejection as rejection:  # KumoMTA: its code and text, as they are
            return Response(rejection.code, rejection.message)
        except Exception as exc:
            return Response(450, str(exc))
        return None

    async def _load_body(self, message: Message) -> bool:
        """The body in memory (a waiting message's lives in the spool only); False when
        it cannot be read and the message was handled here."""
        if not message.size or message.data:
            return True
        try:
            data = await self.shared.load_data(message)
        except Exception as exc:  # a spool read error: retry later
            self._failed(
                message, internal_responses.deliver_error(f"spool read failed: {str(exc)[:200]}")
            )
            return False
        if data is None:  # set aside, never dropped (as the other paths do)
            log.error("message body missing from spool; quarantined", id=message.id)
            await self.shared.quarantine(message)
            return False
        message.data = data
        return True

    async def _rebind(self, message: Message) -> Response | None:
        """Save the message and move it into the queue it now belongs to; the response
        of a failure, None once it moved."""
        owner = self.owner
        resolve = owner.resolve_queue
        try:
            if resolve is None:
                raise RuntimeError("the queues were wired without a queue resolver")
            queue, config = await resolve(message)
            shared = message.shared
            if shared is not None and not shared.sole:
                # Its own record from now on: saving it again under the shared body would
                # count it twice as a user of that body.
                message.data = message.data
            if config is not None:
                await owner.store.save(message)  # what the handler changed is durable
        except Exception as exc:
            return Response(450, str(exc))
        message.due = None
        owner.detach(message)
        attempt = Attempt(queue=queue, site=self.key.name, delivery_protocol=LOG_NAME)
        owner.journal.outcome(
            RecordType.DeferredInjectionRebind, message, Response(250, "ok"), attempt
        )
        running().delivered += 1
        if config is None:  # bound for the null queue: discarded, as at reception
            await owner.forget(message)
            return None
        owner.insert(message, queue, config, RECEIVED)
        return None

    def _failed(self, message: Message, response: Response) -> None:
        """A Bounce for a 5xx, else a TransientFailure and a retry in this queue."""
        _restore(message)
        outcomes = self.owner.outcomes
        dispatcher = running()
        if response.code >= 500:
            dispatcher.failed += 1
            outcomes.bounce(None, message, response, None, None, session=_SESSION,
                            queue_site=self.key.name)  # fmt: skip
        else:
            dispatcher.transfailed += 1
            outcomes.transient(None, message, response, None, None, session=_SESSION,
                               queue_site=self.key.name)  # fmt: skip


def _restore(message: Message) -> None:
    """Back in the deferred queue as received: the ``queue`` meta set again and the body
    dropped from memory (the spool holds it as received; see the module docstring)."""
    message.set_meta(QUEUE_META, DEFERRED_QUEUE_NAME)
    message.release_data()


async def deferred_path_for(owner: DeferredOwner, queue_name: str) -> DeferredInjectPath:
    """The ready queue of the deferred queue (created on first use, its configuration
    asked again as its ``refresh_strategy`` says)."""
    return await open_internal_path(owner, queue_name, DEFERRED_QUEUE_NAME, SUFFIX,
                                    DeferredInjectPath)  # fmt: skip


async def open_internal_path(
    owner: DeferredOwner, queue_name: str, internal_name: str, suffix: str,
    kind: type[DeferredInjectPath],
) -> DeferredInjectPath:
    """The ready queue ``kind`` of one of KumoMTA's internal queues (``internal_name``),
    from source ``unspecified``: created on first use, its configuration asked of the
    policy as for the site ``internal_name`` and again as its ``refresh_strategy`` says."""
    key = PathKey(SOURCE, internal_name, suffix)
    path = owner.paths.get(key)
    hooks = owner.hooks
    if path is None or path.freshness.due(path.config, hooks.config_epoch):
        source = await hooks.get_egress_source(SOURCE)
        config = await hooks.get_egress_path_config(internal_name, SOURCE, internal_name)
        if source is None or config is None:
            raise RoutingError(
                internal_responses.queue_unresolved(
                    queue_name, f"no egress path configuration for {key.name}"
                )
            )
        freshness = Freshness.now(config, hooks.config_epoch)
        if path is None:
            path = kind(owner.egress, key, internal_name, source, config, freshness)
            owner.paths[key] = path
        else:
            path.refresh(config, source, freshness)
    assert isinstance(path, kind)
    path.owner = owner
    return path
