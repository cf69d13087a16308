"""Using an egress path: connection slots, message rate, connecting, sending one message."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from kumocore.queue.ready import LEASE_SECONDS, ConnectionFailed, Slot
from kumocore.queue.rewrite_status import rewrite_delivery_status
from kumocore.response import Response

if TYPE_CHECKING:
    from collections import Counter

    from kumocore.config import EgressPathConfig
    from kumocore.delivery.client import SmtpClientConnection
    from kumocore.delivery.dane import DanePolicy
    from kumocore.dns import Resolver
    from kumocore.dns.mx import MxTarget
    from kumocore.hooks import Hooks
    from kumocore.message import Message
    from kumocore.queue.ready import PathOutcomes, ReadyQueue
    from kumocore.queue.schedule import ScheduledQueue
    from kumocore.spool.store import MessageStore
    from kumocore.throttle.spec import ThrottleSpec
    from kumocore.throttle.store import Lease, ThrottleStore

log = structlog.get_logger("kumocore.egress")


#: The longest a connection waits for the message rate before handing its slot back.
MAX_RATE_WAIT = 5.0


class _NoAddress(Exception):
    """An MX target has no address to try; ``response`` says why."""

    def __init__(self, response: Response, *, filtered: bool = False) -> None:
        super().__init__(response.to_single_line())
        self.response = response
        self.filtered = filtered


class EgressOwner(Protocol):
    """What the egress needs of the queue manager that builds it."""

    @property
    def hooks(self) -> Hooks: ...

    @property
    def resolver(self) -> Resolver: ...

    @property
    def store(self) -> MessageStore: ...

    @property
    def throttles(self) -> ThrottleStore | None: ...

    @property
    def hostname(self) -> str: ...

    @property
    def dane_counts(self) -> Counter[str]: ...

    @property
    def outcomes(self) -> PathOutcomes: ...

    def queue_of(self, message: Message) -> ScheduledQueue | None: ...

    async def load_data(self, message: Message) -> bytes | None: ...

    async def forget(self, message: Message, *, keep_spooled: bool = False) -> None: ...


class Egress:
    """Throttles, connections and sends for ready queues."""

    def __init__(self, manager: EgressOwner) -> None:
        from kumocore.throttle.local import LocalThrottleStore

        self.manager = manager
        self.local = LocalThrottleStore()
        from kumocore.delivery.broken_tls import BrokenTls

        self.broken_tls = BrokenTls()

    def _store(self, force_local: bool) -> ThrottleStore:
        shared = self.manager.throttles
        return self.local if force_local or shared is None else shared

    @staticmethod
    def connection_limit(config: EgressPathConfig) -> int:
        return int(config.connection_limit.limit)

    async def acquire_slot(self, ready: ReadyQueue) -> Slot | None:
        """A connection slot for ``ready``, or None when its connection limit, or one of
        its ``additional_connection_limits`` (named, so shared by every path naming them,
        as in KumoMTA), is reached."""
        limits = [(f"kumomta.connection_limit.{ready.key.name}", ready.config.connection_limit)]
        limits += list(ready.config.additional_connection_limits.items())
        held: list[tuple[ThrottleStore, Lease]] = []
        for key, spec in limits:
            store = self._store(bool(getattr(spec, "force_local", False)))
            lease = await store.acquire_lease(key, int(spec.limit), LEASE_SECONDS)
            if lease is None:
                await self.release_slot(Slot(tuple(held)))
                return None
            held.append((store, lease))
        return Slot(tuple(held))

    async def keep_slot(self, slot: Slot | None) -> None:
        """Renew a long-lived connection's leases before they lapse (a lapsed lease would
        let the fleet open one connection too many)."""
        if slot is None:
            return
        for store, lease in slot.leases:
            if lease.expires - time.monotonic() > LEASE_SECONDS / 3:
                continue
            try:
                await store.renew_lease(lease, LEASE_SECONDS)
            except Exception as exc:  # lapsed already (e.g. Redis was away): keep going
                log.warning("connection slot lease could not be renewed", error=str(exc))

    async def slot_wanted(self, slot: Slot | None) -> bool:
        """Whether a unit of one of the slot's limits was just refused to someone else (the
        node's other workers share its connection limits): an idle connection then gives
        its slot back instead of sitting on it for ``idle_timeout``. Stores without that
        signal (Redis) never ask for it."""
        if slot is None:
            return False
        for store, lease in slot.leases:
            wanted = getattr(store, "lease_wanted", None)
            try:
                if wanted is not None and await wanted(lease.key):
                    return True
            except Exception as exc:  # the store is away: keep the connection, as before
                log.debug("lease contention check failed", error=str(exc))
        return False

    async def release_slot(self, slot: Slot | None) -> None:
        if slot is None:
            return
        for store, lease in slot.leases:
            try:
                await store.release_lease(lease)
            except Exception as exc:  # a lease that is not released lapses on its own
                log.debug("lease release failed", error=str(exc))

    async def wait_for_rate(self, ready: ReadyQueue) -> bool:
        """Wait until the path's ``max_message_rate`` and each of its
        ``additional_message_rate_throttles`` (named, shared by every path naming them)
        admit one more message."""
        if not await self._admit(ready, ready.config.max_message_rate, "max_message_rate"):
            return False
        for name, spec in ready.config.additional_message_rate_throttles.items():
            if not await self._admit(ready, spec, name, shared=True):
                return False
        return True

    async def wait_for_connection_rate(self, ready: ReadyQueue) -> bool:
        """Wait until the path's ``max_connection_rate`` admits one more connection."""
        return await self._admit(ready, ready.config.max_connection_rate, "max_connection_rate")

    async def _admit(
        self, ready: ReadyQueue, spec: ThrottleSpec | None, what: str, *, shared: bool = False
    ) -> bool:
        """Wait until the throttle ``spec`` (one of the path's rates) admits one more.

        False when the wait would exceed :data:`MAX_RATE_WAIT`: the caller then gives its
        work back, and the queue is woken again once the throttle would admit it.
        """
        if spec is None:
            return True
        from kumocore.throttle.store import rate_key

        store = self._store(bool(spec.force_local))
        key = rate_key(what if shared else f"kumomta.{what}.{ready.key.name}", spec)
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
        """Connect to the first reachable MX address, in preference order (or, for a
        protocol other than SMTP, open that protocol's connection)."""
        from kumocore.config.protocols import SmtpProtocol
        from kumocore.delivery.client import ConnectFailure
        from kumocore.delivery.mta_sts import tls_mode_for

        if ready.protocol is not None and not isinstance(ready.protocol, SmtpProtocol):
            conn: SmtpClientConnection = await ready.protocol.connect(ready)
            return conn
        source = ready.source
        config = tls_mode_for(ready.config, ready.mx)  # MTA-STS enforce/testing: TLS posture
        tls_mode = self.broken_tls.tls_mode(ready.key.site, config)
        if isinstance(tls_mode, Response):
            raise ConnectionFailed(tls_mode)
        last = Response.parse(451, "4.4.1 no MX host could be reached")
        candidates, filtered = 0, False
        for target in ready.targets:
            try:
                addresses = await self._addresses(target, config.ip_lookup_strategy)
            except _NoAddress as exc:
                last, filtered = exc.response, filtered or exc.filtered
                continue
            for address in addresses:
                if config.prohibited_hosts.contains(address) or config.skip_hosts.contains(address):
                    continue
                candidates += 1
                port = int(source.remote_port or target.port or config.smtp_port)
                dane = await self._dane(ready, target, address, port) if config.enable_dane \
                    else None
                if isinstance(dane, Response):  # TLSA status unknown: never less security
                    last = dane
                    continue
                options = dict(
                    mx_host=target.name,
                    address=address,
                    # KumoMTA: the source's remote_port, else the mx_list (or
                    # queue name) port, else the path's smtp_port.
                    port=port,
                    source_address=source.source_address,
                    egress_source=source,
                    ehlo_domain=config.ehlo_domain or source.ehlo_domain or self.manager.hostname,
                    path=config,
                )
                if dane is not None:
                    options["dane"] = dane
                try:
                    return await self._open(
                        ready, options, dane.tls_mode(tls_mode) if dane else tls_mode)
                except ConnectFailure as failure:
                    last = failure.response
        if candidates == 0 and ready.targets and not filtered:
            last = Response.parse(
                550,
                "5.4.4 every MX address of this site is prohibited (prohibited_hosts / skip_hosts)",
            )
        raise ConnectionFailed(last)

    async def _dane(
        self, ready: ReadyQueue, target: MxTarget, address: str, port: int
    ) -> DanePolicy | Response:
        """What the MX host's TLSA records say (see :mod:`kumocore.delivery.dane`)."""
        from kumocore.delivery.dane import decide, selection_secure

        trusted_list = bool(getattr(ready.protocol, "treat_mx_list_as_secure", False))
        return await decide(self.manager.resolver, target.name, address, port,
                            secure_selection=selection_secure(ready.mx, trusted_list),
                            counts=self.manager.dane_counts,
                            preresolved=target.address is not None)

    async def _addresses(self, target: MxTarget, strategy: str) -> list[str]:
        """The addresses of one MX target, in ``ip_lookup_strategy`` order."""
        from kumocore.dns.mx import order_addresses

        try:
            addresses = (
                [target.address] if target.address
                else await self.manager.resolver.resolve_ips(target.name))
        except Exception as exc:
            raise _NoAddress(Response.parse(
                451, f"4.4.3 address lookup for {target.name} failed: {exc}")) from exc
        ordered = order_addresses(addresses, strategy)
        if not ordered:
            raise _NoAddress(Response.parse(
                451, f"4.4.3 no address of {target.name} is allowed by ip_lookup_strategy "
                f"{strategy}"), filtered=True)
        return ordered

    async def _open(
        self, ready: ReadyQueue, options: dict[str, Any], tls_mode: str
    ) -> SmtpClientConnection:
        """One address: connect; after broken TLS remember the site, and reconnect in
        clear text when the path asks to (see :mod:`kumocore.delivery.broken_tls`)."""
        from kumocore.delivery.broken_tls import reconnect_in_clear
        from kumocore.delivery.client import ConnectFailure, open_connection

        try:
            return await open_connection(**options, tls_mode=tls_mode)
        except ConnectFailure as failure:
            if not failure.tls_broken:
                raise
            self.broken_tls.failed(ready.key.site, ready.config)
            if not reconnect_in_clear(ready.config, tls_mode):
                raise
        return await open_connection(**options, tls_mode="Disabled")

    async def deliver(
        self, ready: ReadyQueue, conn: SmtpClientConnection, message: Message
    ) -> None:
        """One attempt; its outcome is always handed to :class:`Outcomes` (send never
        raises: every wire failure comes back as a 4xx reply)."""
        # Known CRLF-clean only as held in memory; a body reloaded from the spool is not.
        data: bytes | None = message.data
        clean = message.crlf_clean
        try:
            if not data:
                data, clean = await self.manager.load_data(message), False
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
            store = self.manager.store
            if store is not None:
                await store.quarantine(message.id, message.meta_bytes(), "data record missing")
            await self.manager.forget(message, keep_spooled=True)
            return
        response = await conn.send(str(message.sender), str(message.recipient), data,
                                   crlf_clean=clean)
        if not response.is_success:
            queue = self.manager.queue_of(message)
            queue_name = message.queue_name() if queue is None else queue.name
            response = await rewrite_delivery_status(
                self.manager.hooks, queue_name, message, response)
        self.manager.outcomes.handle(
            ready, message, response, peer=conn.peer, source_address=conn.source_address,
            session=conn.session,
        )
