"""From a due message to an egress path: pool → source → MX site → egress path.

The destination is KumoMTA's: the queue name's routing domain, else its domain (so the
``queue`` meta may name a domain, ``[192.0.2.1]``, ``[IPv6:2001:db8::1]`` or
``host:port``). The queue config's ``protocol`` decides the site: the MX site of that
destination, ``mx_list:<entries>`` for an explicit ``mx_list``, or the destination itself
for other protocols; the path (its ready queue) is ``source->site@<protocol suffix>``.
Maildir queues are written directly, without a path (as in KumoMTA); the deferred
injection queue of ``deferred_queue`` listeners has a ready queue of its own
(kumocore.queue.deferred_inject).

The source is the next of the pool's weighted round robin; when the egress path of that
source limits how often it may be selected (``source_selection_rate``,
``additional_source_selection_rates``: kumocore.queue.source_selection) and the limit is
spent, the next candidate is tried without it, as KumoMTA's ``select_and_insert`` does
(for SMTP and ``custom_lua`` queues); with none left the message gets KumoMTA's
TransientFailure and waits for its retry. A path with no selection rate costs two
attribute tests.

Any lookup that fails (an unknown pool or source, a policy error in
``get_egress_path_config``, a DNS failure) is logged and the message stays queued for a
later attempt; only a null MX is final.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import structlog

from kumocore.config.protocols import (
    SMTP_DEFAULT,
    DeliveryProtocol,
    MaildirProtocol,
    SmtpProtocol,
)
from kumocore.delivery.custom_lua import LuaOwner, lua_protocol, lua_ready_queue_for
from kumocore.mail.internal_responses import (
    expired_due,
    insert_throttled,
    no_eligible_sources,
    no_sources,
    null_mx,
    queue_suspended,
    queue_unresolved,
)
from kumocore.mail.queue_name import parse_queue_name
from kumocore.policy.refresh import Freshness
from kumocore.queue.deferred_inject import (
    DeferredInjectProtocol,
    DeferredOwner,
    deferred_path_for,
)
from kumocore.queue.egress import PathKey
from kumocore.queue.egress_cache import DefinitionCache
from kumocore.queue.errors import RoutingError
from kumocore.queue.pool import WeightedRoundRobin
from kumocore.queue.queue_rate import throttle_queue_rate
from kumocore.queue.session import SmtpEgressPath
from kumocore.queue.source_selection import has_selection_rates, selection_admitted

if TYPE_CHECKING:
    from kumocore.config.egress import EgressSource
    from kumocore.delivery.mta_sts import MtaSts
    from kumocore.dns import Resolver
    from kumocore.dns.mx import MailExchanger
    from kumocore.mail.message import Message
    from kumocore.queue.admin import AdminRules, QueueRule
    from kumocore.queue.delays import Delays
    from kumocore.queue.outcomes import Outcomes
    from kumocore.queue.path import EgressPath
    from kumocore.queue.queued import Queued
    from kumocore.queue.schedule import ScheduledQueue

log = structlog.get_logger("kumocore.routing")

#: The insert reason of a message ``throttle_insert_ready_queue`` sent back (KumoMTA's).
INSERT_THROTTLED = "ThrottledByThrottleInsertReadyQueue"


class RouterOwner(LuaOwner, DeferredOwner, Protocol):
    """What routing needs of the queue manager that builds it (and, for ``custom_lua``
    queues, what those ready queues need)."""

    @property
    def outcomes(self) -> Outcomes: ...

    @property
    def admin(self) -> AdminRules: ...

    @property
    def mta_sts(self) -> MtaSts: ...

    @property
    def resolver(self) -> Resolver: ...

    def queue_of(self, message: Message) -> ScheduledQueue | None: ...

    def record_of(self, message: Message) -> Queued | None: ...

    @property
    def delays(self) -> Delays: ...

    def admin_bounce(self, message: Message, rule: QueueRule) -> None: ...

    async def load_data(self, message: Message) -> bytes | None: ...


class Router:
    """Resolves the egress path of due messages and hands them to ready queues."""

    def __init__(self, manager: RouterOwner) -> None:
        self.manager = manager
        self.hooks = manager.hooks
        # Asked on the first routed message, not per message (~3 µs): the policy and the
        # plugins are registered by then.
        self._throttle_event: bool | None = None
        self._rotations: dict[str, tuple[tuple[tuple[str, int], ...], WeightedRoundRobin]] = {}
        # Kept for their ttl, as KumoMTA keeps them (kumocore.queue.egress_cache).
        self.pools = DefinitionCache(self.hooks.get_egress_pool)
        self.sources = DefinitionCache(self.hooks.get_egress_source)

    async def route(self, message: Message) -> None:
        manager = self.manager
        queue = manager.queue_of(message)
        if queue is None:
            return
        now = time.time()
        if message.created + float(queue.config.max_age) <= now:
            max_age = float(queue.config.max_age)
            manager.outcomes.expire(None, message, expired_due(now - message.created, max_age))
            return
        rule = manager.admin.bounce_rule_for(queue.name)
        if rule is not None:
            manager.admin_bounce(message, rule)
            return
        suspension = manager.admin.suspension_for(queue.name)
        if suspension is not None:
            # As KumoMTA: a TransientFailure that counts an attempt and retries the message
            # on its queue's schedule (it may expire meanwhile), not a silent hold.
            manager.outcomes.transient(None, message, queue_suspended(suspension.reason),
                                       None, None, queue_site=True)  # fmt: skip
            return
        rate = queue.config.max_message_rate
        if rate is not None and await throttle_queue_rate(manager, message, queue, rate):
            return
        if await self._throttled(message):
            return
        protocol = queue.config.protocol
        # SMTP queues (no protocol, or smtp's) pay one test for the protocols below.
        if protocol is not None and protocol.name != "smtp_client" \
                and await self._special(message, queue, protocol):
            return
        try:
            path = await self._dispatch(message, queue)
        except RoutingError as error:
            manager.outcomes.handle(None, message, error.response, peer=None)
            return
        path.add(message)

    async def _special(
        self, message: Message, queue: ScheduledQueue, protocol: DeliveryProtocol
    ) -> bool:
        """Route a message of a protocol that has no ready queue of the SMTP kind (maildir,
        xfer, deferred injection); False for the others (``custom_lua``)."""
        manager = self.manager
        if isinstance(protocol, MaildirProtocol):
            from kumocore.queue.maildir import deliver_to_maildir

            await deliver_to_maildir(manager, message, protocol, queue.name)
            return True
        if protocol.name == "xfer":
            from kumocore.xfer.send import XferProtocol

            assert isinstance(protocol, XferProtocol)
            # Handed over, not awaited: a slow target must not hold a routing task.
            protocol.sender.submit(manager, message, protocol)
            return True
        if isinstance(protocol, DeferredInjectProtocol):
            try:
                path = await deferred_path_for(manager, queue.name)
            except RoutingError as error:
                manager.outcomes.handle(None, message, error.response, peer=None)
                return True
            path.add(message)
            return True
        return False

    async def _throttled(self, message: Message) -> bool:
        """Run ``throttle_insert_ready_queue``; True when it pushed the message's due time
        into the future (it is then back in its scheduled queue)."""
        if self._throttle_event is None:
            self._throttle_event = self.hooks.implemented("throttle_insert_ready_queue")
        if not self._throttle_event:
            return False
        before = message.due
        try:
            await self.hooks.throttle_insert_ready_queue(message)
        except Exception as exc:
            # A policy bug must not strand the message: it goes on to delivery.
            log.error("throttle_insert_ready_queue failed", id=message.id, error=str(exc))
            return False
        due = message.due
        if due is None or due == before or due <= time.time():
            return False
        manager = self.manager
        queue = manager.queue_of(message)
        response = insert_throttled("" if queue is None else queue.name, due)
        if await manager.delays.requeue(message, response, INSERT_THROTTLED, None):
            return True  # the policy re-bound it
        # As KumoMTA: requeued with no delay of its own, so re-timed with its jitter (the
        # event is asked again within a minute), not left until the time the event set.
        await manager.delays.jittered(message, INSERT_THROTTLED)
        return True

    async def _rotation(self, queue: ScheduledQueue) -> WeightedRoundRobin:
        pool_name = queue.pool_name
        pool = await self.pools.get(pool_name)
        if pool is None:
            raise RoutingError(
                queue_unresolved(queue.name, f"egress pool {pool_name!r} is not defined")
            )
        entries = tuple((entry.name, int(entry.weight)) for entry in pool.entries)
        cached = self._rotations.get(pool_name)
        if cached is None or cached[0] != entries:
            cached = (entries, WeightedRoundRobin(entries))
            self._rotations[pool_name] = cached
        return cached[1]

    @staticmethod
    def _first(queue: ScheduledQueue, rotation: WeightedRoundRobin) -> str:
        source = rotation.next()
        if source is None:
            raise RoutingError(no_sources(queue.name, queue.pool_name))
        return source

    async def _eligible(
        self,
        queue: ScheduledQueue,
        rotation: WeightedRoundRobin,
        source: str,
        path: EgressPath,
        resolve: Callable[[str], Awaitable[EgressPath]],
    ) -> EgressPath:
        """``path`` (of ``source``) when its selection rates admit the source, else the
        path of the next candidate of the rotation that is admitted, leaving out each one
        refused (kumocore.queue.source_selection). None left: KumoMTA's transient
        failure, the message retried on its queue's schedule."""
        refused: set[str] = set()
        store_for = self.manager.egress.throttle_store
        while not await selection_admitted(store_for, path.config, path.key.name, source):
            refused.add(source)
            candidate = rotation.next(refused)
            if candidate is None:
                raise RoutingError(no_eligible_sources(queue.name, queue.pool_name))
            source = candidate
            path = await resolve(source)
        return path

    async def _dispatch(self, message: Message, queue: ScheduledQueue) -> EgressPath:
        """The egress path of the queue's delivery protocol: the one place where a
        ``custom_lua`` queue leaves the SMTP path (kumocore.delivery.custom_lua)."""
        from kumocore.errors import ConfigError

        try:
            protocol = lua_protocol(queue.config)
        except ConfigError as exc:
            raise RoutingError(queue_unresolved(queue.name, str(exc))) from exc
        if protocol is None:
            return await self._smtp_path_for(queue)
        rotation = await self._rotation(queue)
        source = self._first(queue, rotation)
        path = await lua_ready_queue_for(self.manager, message, queue, protocol, source)
        if not has_selection_rates(path.config):
            return path

        def resolve(name: str) -> Awaitable[EgressPath]:
            return lua_ready_queue_for(self.manager, message, queue, protocol, name)

        return await self._eligible(queue, rotation, source, path, resolve)

    async def _smtp_path_for(self, queue: ScheduledQueue) -> EgressPath:
        # Every routed message comes here: the first candidate's path is found inline
        # (no extra awaits), and a path without selection rates returns at once.
        rotation = await self._rotation(queue)
        source_name = rotation.next()
        if source_name is None:
            raise RoutingError(no_sources(queue.name, queue.pool_name))
        source = await self.sources.get(source_name)
        if source is None:
            raise _undefined_source(queue, source_name)
        parts = parse_queue_name(queue.name)
        domain = parts.routing_domain or parts.domain
        protocol = queue.config.protocol or SMTP_DEFAULT
        mx, targets, site = None, [], domain
        if isinstance(protocol, SmtpProtocol) and protocol.mx_list:
            targets, site = list(protocol.mx_list), protocol.mx_list_site_name
        elif isinstance(protocol, SmtpProtocol):
            mx = await self._lookup_mx(domain, queue.name)
            targets, site = mx.targets(), mx.site_name
        key = PathKey(source_name, site, protocol.suffix)
        path = self.manager.paths.get(key)
        if path is None or path.freshness.due(path.config, self.hooks.config_epoch):
            path = await self._load_path(queue, key, domain, source)
        path.mx, path.targets, path.protocol = mx, targets, protocol
        config = path.config
        if config.source_selection_rate is None and not config.additional_source_selection_rates:
            return path

        async def resolve(name: str) -> EgressPath:
            # The next candidate source: same destination, its own path.
            other_source = await self.sources.get(name)
            if other_source is None:
                raise _undefined_source(queue, name)
            other_key = PathKey(name, site, protocol.suffix)
            other = self.manager.paths.get(other_key)
            if other is None or other.freshness.due(other.config, self.hooks.config_epoch):
                other = await self._load_path(queue, other_key, domain, other_source)
            other.mx, other.targets, other.protocol = mx, list(targets), protocol
            return other

        return await self._eligible(queue, rotation, source_name, path, resolve)

    async def _load_path(
        self, queue: ScheduledQueue, key: PathKey, domain: str, source: EgressSource
    ) -> SmtpEgressPath:
        """Ask the policy for the config of path ``key``: a new path, or the cached one
        refreshed."""
        epoch = self.hooks.config_epoch
        config = await self.hooks.get_egress_path_config(domain, key.source, key.site)
        if config is None:
            raise RoutingError(
                queue_unresolved(
                    queue.name, f"no egress path configuration for {key.source}->{key.site}"
                )
            )
        freshness = Freshness.now(config, epoch)
        path = self.manager.paths.get(key)
        if path is None:
            path = SmtpEgressPath(self.manager.egress, key, domain, source, config, freshness)
            self.manager.paths[key] = path
        else:
            path.refresh(config, source, freshness)
        assert isinstance(path, SmtpEgressPath)
        return path

    async def _lookup_mx(self, domain: str, queue_name: str) -> MailExchanger:
        from kumocore.dns import DnsError

        try:
            mx = await self.manager.resolver.lookup_mx(domain)
            mx = await self.manager.mta_sts.apply(domain, mx)  # enforce: allowed hosts only
        except DnsError as exc:
            # Even NXDOMAIN is retried (as KumoMTA does): DNS breaks and recovers.
            raise RoutingError(
                queue_unresolved(queue_name, f"MX lookup for {domain}: {exc}")
            ) from exc
        if mx.site_name == "":
            raise RoutingError(null_mx())
        return mx


def _undefined_source(queue: ScheduledQueue, source_name: str) -> RoutingError:
    return RoutingError(
        queue_unresolved(queue.name, f"egress source {source_name!r} is not defined")
    )
