"""Using an egress path: connection slots, message rate, connecting, sending one message."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from kumocore.queue.ready import LEASE_SECONDS, ConnectionFailed
from kumocore.queue.rewrite_status import rewrite_delivery_status
from kumocore.response import Response

if TYPE_CHECKING:
    from kumocore.config import EgressPathConfig
    from kumocore.delivery.client import SmtpClientConnection
    from kumocore.message import Message
    from kumocore.queue.manager import QueueManager
    from kumocore.queue.ready import ReadyQueue
    from kumocore.throttle.spec import ThrottleSpec
    from kumocore.throttle.store import Lease, ThrottleStore

log = structlog.get_logger("kumocore.egress")


@dataclass(frozen=True, slots=True)
class Slot:
    """A held connection slot: the lease and the store that granted it."""

    store: ThrottleStore
    lease: Lease


#: The longest a connection waits for the message rate before handing its slot back.
MAX_RATE_WAIT = 5.0


class Egress:
    """Throttles, connections and sends for ready queues."""

    def __init__(self, manager: QueueManager) -> None:
        from kumocore.throttle.local import LocalThrottleStore

        self.manager = manager
        self.runtime = manager.runtime
        self.local = LocalThrottleStore()

    def _store(self, force_local: bool) -> ThrottleStore:
        shared = self.runtime.throttles
        return self.local if force_local or shared is None else shared

    @staticmethod
    def connection_limit(config: EgressPathConfig) -> int:
        return int(config.connection_limit.limit)

    async def acquire_slot(self, ready: ReadyQueue) -> Slot | None:
        """A connection slot for ``ready``, or None when its connection limit is reached."""
        spec = ready.config.connection_limit
        store = self._store(bool(getattr(spec, "force_local", False)))
        key = f"kumomta.connection_limit.{ready.key.name}"
        lease = await store.acquire_lease(key, int(spec.limit), LEASE_SECONDS)
        return Slot(store, lease) if lease is not None else None

    async def keep_slot(self, slot: Slot | None) -> None:
        """Renew a long-lived connection's lease before it lapses (a lapsed lease would let
        the fleet open one connection too many)."""
        if slot is None or slot.lease.expires - time.monotonic() > LEASE_SECONDS / 3:
            return
        try:
            await slot.store.renew_lease(slot.lease, LEASE_SECONDS)
        except Exception as exc:  # lapsed already (e.g. Redis was away): keep going
            log.warning("connection slot lease could not be renewed", error=str(exc))

    async def release_slot(self, slot: Slot | None) -> None:
        if slot is None:
            return
        try:
            await slot.store.release_lease(slot.lease)
        except Exception as exc:  # a lease that is not released lapses on its own
            log.debug("lease release failed", error=str(exc))

    async def wait_for_rate(self, ready: ReadyQueue) -> bool:
        """Wait until the path's ``max_message_rate`` admits one more message."""
        return await self._admit(ready, ready.config.max_message_rate, "max_message_rate")

    async def wait_for_connection_rate(self, ready: ReadyQueue) -> bool:
        """Wait until the path's ``max_connection_rate`` admits one more connection."""
        return await self._admit(ready, ready.config.max_connection_rate, "max_connection_rate")

    async def _admit(self, ready: ReadyQueue, spec: ThrottleSpec | None, what: str) -> bool:
        """Wait until the throttle ``spec`` (one of the path's rates) admits one more.

        False when the wait would exceed :data:`MAX_RATE_WAIT`: the caller then gives its
        work back, and the queue is woken again once the throttle would admit it.
        """
        if spec is None:
            return True
        from kumocore.throttle.store import rate_key

        store = self._store(bool(spec.force_local))
        key = rate_key(f"kumomta.{what}.{ready.key.name}", spec)
        waited = 0.0
        while True:
            result = await store.throttle(key, spec)
            if not result.throttled:
                return True
            if waited + result.retry_after > MAX_RATE_WAIT:
                self._wake_later(ready, result.retry_after)
                return False
            await asyncio.sleep(result.retry_after)
            waited += result.retry_after

    def _wake_later(self, ready: ReadyQueue, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, ready.wake)

    async def connect(self, ready: ReadyQueue) -> SmtpClientConnection:
        """Connect to the first reachable MX address, in preference order."""
        from kumocore.delivery.client import ConnectFailure, open_connection
        from kumocore.delivery.mta_sts import tls_mode_for

        config, source, mx = ready.config, ready.source, ready.mx
        config = tls_mode_for(config, mx)  # MTA-STS enforce/testing: TLS posture
        last = Response.parse(451, "4.4.1 no MX host could be reached")
        candidates = 0
        for host in mx.hosts:
            try:
                addresses = await self.runtime.resolver.resolve_ips(host)
            except Exception as exc:
                last = Response.parse(451, f"4.4.3 address lookup for {host} failed: {exc}")
                continue
            for address in addresses:
                if config.prohibited_hosts.contains(address) or config.skip_hosts.contains(address):
                    continue
                candidates += 1
                try:
                    return await open_connection(
                        mx_host=host.rstrip("."),
                        address=address,
                        port=int(source.remote_port or config.smtp_port),
                        source_address=source.source_address,
                        egress_source=source,
                        ehlo_domain=config.ehlo_domain
                        or source.ehlo_domain
                        or self.runtime.hostname,
                        path=config,
                    )
                except ConnectFailure as failure:
                    last = failure.response
        if candidates == 0 and mx.hosts:
            last = Response.parse(
                550,
                "5.4.4 every MX address of this site is prohibited (prohibited_hosts / skip_hosts)",
            )
        raise ConnectionFailed(last)

    async def deliver(
        self, ready: ReadyQueue, conn: SmtpClientConnection, message: Message
    ) -> None:
        """One attempt; its outcome is always handed to :class:`Outcomes` (send never
        raises: every wire failure comes back as a 4xx reply)."""
        try:
            data = message.data or await self.manager.load_data(message)
        except Exception as exc:  # a spool read error: retry later, like any 4xx
            log.error("message body could not be read from the spool", id=message.id,
                      error=str(exc))
            response = Response.parse(451, f"4.3.0 spool read failed: {str(exc)[:200]}")
            self.manager.outcomes.handle(ready, message, response, peer=None)
            return
        if data is None:
            # Undeliverable, but not to be silently dropped: move its meta aside where an
            # operator can find it (and where the next start won't trip over it).
            log.error("message body missing from spool; quarantined", id=message.id)
            store = self.runtime.store
            if store is not None:
                await store.quarantine(message.id, message.meta_bytes(), "data record missing")
            await self.manager.forget(message, keep_spooled=True)
            return
        response = await conn.send(str(message.sender), str(message.recipient), data)
        if not response.is_success:
            queue = self.manager.queue_of(message)
            queue_name = message.queue_name() if queue is None else queue.name
            response = await rewrite_delivery_status(
                self.runtime.hooks, queue_name, message, response)
        self.manager.outcomes.handle(
            ready, message, response, peer=conn.peer, source_address=conn.source_address
        )
