"""The ``custom_lua`` delivery protocol: a policy constructor "delivers" the messages.

A queue config with ``protocol = { custom_lua = { constructor = 'make.webhook' } }``
sends its messages to a ready queue of its own (one per egress source, routing domain
and constructor, as in KumoMTA). Each session of that queue calls the constructor event
(``kumo.on('make.webhook', function(domain, tenant, campaign) ... end)``) once and hands
messages to the object it returns: ``send_batch(messages)`` when it has one (batches of
``batch_size``, waiting up to ``max_batch_latency`` for ``min_batch_size``), else
``send(message)`` per message. A string result is the delivery's disposition (250);
``kumo.reject(4xx, ...)`` — or any error — defers the message(s) with the queue's retry
schedule; ``kumo.reject(5xx, ...)`` bounces them. So log-hook records wait in the spool,
visible in ``queue summary``, while their target is down.

The router dispatches here from one place (:meth:`kumocore.queue.routing.Router.route`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.config.lua_options import LuaProtocol
from kumocore.config.protocols import CustomLuaProtocol
from kumocore.delivery.tls import SessionInfo
from kumocore.errors import ConfigError, Rejection
from kumocore.mail import internal_responses
from kumocore.mail.response import Response
from kumocore.policy.refresh import Freshness
from kumocore.queue.dispatchers import running
from kumocore.queue.egress import PathKey
from kumocore.queue.owners import LuaOwner
from kumocore.queue.path import EgressPath

if TYPE_CHECKING:
    from kumocore.config import QueueConfig
    from kumocore.mail.message import Message
    from kumocore.queue.dispatchers import Dispatcher
    from kumocore.queue.schedule import ScheduledQueue

log = structlog.get_logger("kumocore.custom_lua")
#: What this protocol's records say in ``delivery_protocol`` (KumoMTA's ``Lua``).
LUA_SESSION = SessionInfo(delivery_protocol="Lua")


def lua_protocol(config: QueueConfig) -> LuaProtocol | None:
    """The queue's ``custom_lua`` protocol options, None for any other protocol (SMTP...)."""
    protocol = config.protocol
    return protocol.options if isinstance(protocol, CustomLuaProtocol) else None


class Sender:
    """The object a constructor returned, called through the policy that made it."""

    def __init__(self, source: Any, constructor: str, obj: Any) -> None:
        self.source, self.constructor, self.obj = source, constructor, obj
        methods = obj if isinstance(obj, Mapping) else {}
        self._send = methods.get("send")
        self._send_batch = methods.get("send_batch")
        self._close = methods.get("close")
        if self._send is None and self._send_batch is None:
            raise ConfigError(
                f"custom_lua: '{constructor}' returned {type(obj).__name__}, "
                "not an object with a send or send_batch method"
            )

    async def deliver(self, batch: Sequence[Message]) -> list[Response]:
        """One response per message of ``batch`` (same order)."""
        if self._send_batch is not None:
            response = await self._call(self._send_batch, list(batch))
            return [response] * len(batch)
        assert self._send is not None
        return [await self._call(self._send, message) for message in batch]

    async def _call(self, fn: Any, argument: Any) -> Response:
        try:
            result = await self.source.call_lua_function(fn, self.obj, argument)
        except Rejection as rejection:
            # As KumoMTA: the code, and the message as it is (no enhanced code taken out).
            return Response(rejection.code, rejection.message)
        except Exception as exc:  # a failing sender defers: the records wait in the spool
            return internal_responses.deliver_error(f"custom_lua {self.constructor}: {exc}")
        return Response(250, "" if result is None else str(result))

    async def close(self) -> None:
        if self._close is None:
            return
        try:
            await self.source.call_lua_function(self._close, self.obj)
        except Exception as exc:
            log.warning(
                "custom_lua sender close failed", constructor=self.constructor, error=str(exc)
            )


class LuaReadyQueue(EgressPath):
    """An egress path whose "connections" are sender objects from a constructor event."""

    protocol: LuaProtocol
    tenant: str | None = None
    campaign: str | None = None

    async def _construct(self) -> Sender:
        from kumocore.policy.custom_events import custom_event_source

        name = self.protocol.constructor
        source = custom_event_source(self.shared.hooks.pm, name)
        if source is None:
            raise ConfigError(
                f"custom_lua: the policy registers no '{name}' event "
                f"(kumo.on('{name}', function(domain, tenant, campaign) ...))"
            )
        obj = await source.call_custom_event(name, self.domain, self.tenant, self.campaign)
        return Sender(source, name, obj)

    async def serve(self, slot: Any, epoch: int) -> None:
        # The phases inspect-ready-q shows, named as KumoMTA's (see the SMTP path's serve).
        dispatcher = running()
        if self.config.max_connection_rate is not None:
            dispatcher.enter_phase("ConnectionRateThrottled")
        if not self.messages or not await self.throttles.connection_rate(self.config):
            return
        dispatcher.enter_phase("AttemptingConnection")
        try:
            sender = await self._construct()
        except Exception as exc:
            response = internal_responses.connect_failed([str(exc)])
            log.error("custom_lua constructor failed", path=self.key.name, error=str(exc))
            self.backoff.failed(response, epoch)
            self.fail_queued(response)
            return
        try:
            await self._deliver_batches(sender, slot, dispatcher)
        finally:
            dispatcher.enter_phase("Closing")
            await sender.close()

    async def _deliver_batches(
        self, sender: Sender, lease: Any, dispatcher: Dispatcher | None = None
    ) -> None:
        dispatcher = dispatcher or running()
        idle = float(self.config.idle_timeout)
        delivered = 0
        while delivered < self.config.max_deliveries_per_connection:
            dispatcher.enter_phase("Idle")
            batch = await self._next_batch(idle)
            if not batch:
                return
            # The messages not yet handed to an outcome: what goes back to the queue if
            # this connection ends (an abort, a failed sender) before they are.
            pending = list(batch)
            try:
                if not await self.throttles.message_rate(self.config):
                    return
                one = self.protocol.batch_size == 1  # KumoMTA's detail says how it sends
                dispatcher.enter_phase(
                    "DeliveringMessage", "lua: send" if one else "lua: send_batch"
                )
                await self._load_bodies(pending)
                batch = list(pending)
                started = time.perf_counter()
                responses = await sender.deliver(batch) if batch else []
                self.shared.outcomes.deliver_latency.observe(
                    self.key.protocol_kind, time.perf_counter() - started)
                for message, response in zip(batch, responses, strict=True):
                    self.shared.outcomes.handle(
                        self, message, response, peer=None, session=LUA_SESSION)
                pending.clear()
            finally:
                # Never outside both the queue and the scheduler, never handled twice. A
                # sender stopped inside deliver() may have sent some: those go out again
                # (at least once, as an SMTP session cut before its reply).
                self.put_back(pending)
            delivered += len(batch)
            await self.throttles.keep(lease)

    async def _load_bodies(self, pending: list[Message]) -> None:
        """Bring every body of ``pending`` into memory (a deferred message's body was
        released to the spool). A message whose body cannot be read is handled here and
        taken out of ``pending`` at once, so that a cancelled load never puts it back."""
        for message in list(pending):
            if not message.size or message.data:
                continue
            try:
                data = await self.shared.load_data(message)
            except Exception as exc:  # a spool read error: retry later
                pending.remove(message)
                self.shared.outcomes.handle(
                    self,
                    message,
                    internal_responses.deliver_error(f"spool read failed: {str(exc)[:200]}"),
                    peer=None,
                    session=LUA_SESSION,
                )
                continue
            if data is None:  # as the SMTP path does: set aside, never dropped
                log.error("message body missing from spool; quarantined", id=message.id)
                await self.shared.quarantine(message)
                pending.remove(message)
                continue
            message.data = data

    async def _next_batch(self, idle: float) -> list[Message]:
        """Up to ``batch_size`` messages; waits up to ``max_batch_latency`` for
        ``min_batch_size`` of them once the first is there."""
        first = await self.next_message(idle)
        if first is None:
            return []
        batch = [first]
        protocol = self.protocol
        deadline = time.monotonic() + protocol.max_batch_latency
        while len(batch) < protocol.batch_size:
            if self.messages:
                message = await self.next_message(0.0)
                if message is not None:
                    batch.append(message)
                continue
            if len(batch) >= protocol.min_batch_size or time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return batch


async def lua_ready_queue_for(
    manager: LuaOwner,
    message: Message,
    queue: ScheduledQueue,
    protocol: LuaProtocol,
    source_name: str,
) -> EgressPath:
    """The ``custom_lua`` path ``message`` goes to (created on first use)."""
    from kumocore.mail.queue_name import parse_queue_name
    from kumocore.queue.errors import RoutingError

    parts = parse_queue_name(queue.name)
    domain = parts.routing_domain or parts.domain
    key = PathKey(source_name, domain, f"lua:{protocol.constructor}")
    ready = manager.paths.get(key)
    hooks = manager.hooks
    if ready is None or ready.freshness.due(ready.config, hooks.config_epoch):
        source = await hooks.get_egress_source(source_name)
        config = await hooks.get_egress_path_config(domain, source_name, domain)
        if source is None or config is None:
            raise RoutingError(
                internal_responses.queue_unresolved(
                    queue.name, f"custom_lua: no egress source/path for {source_name!r}"
                )
            )
        freshness = Freshness.now(config, hooks.config_epoch)
        if ready is None:
            ready = LuaReadyQueue(manager.egress, key, domain, source, config, freshness)
            manager.paths[key] = ready
        else:
            ready.refresh(config, source, freshness)
    assert isinstance(ready, LuaReadyQueue)
    ready.protocol = protocol
    ready.tenant, ready.campaign = parts.tenant, parts.campaign
    return ready
