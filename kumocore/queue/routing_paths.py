"""The egress path of a routed message: pool → source → MX site → egress path.

The part of :class:`kumocore.queue.routing.Router` that finds the ready queue a message
goes to once routing let it through: ``custom_lua`` queues get theirs from
:mod:`kumocore.delivery.custom_lua`, SMTP queues (and the other protocols with a site)
one per (source, site) path, made or refreshed with the policy's
``get_egress_path_config``. The source is the next of the pool's weighted round robin,
passed over while its selection rates refuse it (:mod:`kumocore.queue.source_selection`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from kumocore.config.protocols import SMTP_DEFAULT, SmtpProtocol
from kumocore.delivery.custom_lua import lua_protocol, lua_ready_queue_for
from kumocore.mail.internal_responses import (
    no_eligible_sources,
    no_sources,
    null_mx,
    queue_unresolved,
)
from kumocore.mail.queue_name import parse_queue_name
from kumocore.policy.refresh import Freshness
from kumocore.queue.egress import PathKey
from kumocore.queue.errors import RoutingError
from kumocore.queue.pool import WeightedRoundRobin
from kumocore.queue.session import SmtpEgressPath
from kumocore.queue.source_health import first_healthy
from kumocore.queue.source_selection import has_selection_rates, selection_admitted

if TYPE_CHECKING:
    from kumocore.config.egress import EgressPool, EgressSource
    from kumocore.dns.mx import MailExchanger
    from kumocore.mail.message import Message
    from kumocore.policy.hooks import Hooks
    from kumocore.queue.egress_cache import DefinitionCache
    from kumocore.queue.owners import RouterOwner
    from kumocore.queue.path import EgressPath
    from kumocore.queue.schedule import ScheduledQueue


class PathResolver:
    """Finds the egress path of a queue (the state is set by :class:`Router`)."""

    manager: RouterOwner
    hooks: Hooks
    pools: DefinitionCache[EgressPool]
    sources: DefinitionCache[EgressSource]
    _rotations: dict[str, tuple[tuple[tuple[str, int], ...], WeightedRoundRobin]]

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

    def _first(self, queue: ScheduledQueue, rotation: WeightedRoundRobin) -> str:
        health = self.manager.egress.source_health
        if health.suspended:  # a source is auto-suspended: pass it over
            return first_healthy(queue, rotation, health)
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
        refused = self.manager.egress.source_health.suspended_names()
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
        source_name = self._first(queue, rotation)
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
            mx = await self._lookup_mx(domain, queue)
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

    async def _lookup_mx(self, domain: str, queue: ScheduledQueue) -> MailExchanger:
        from kumocore.dns import DnsError

        try:
            mx = await self.manager.resolver.lookup_mx(domain)
            mx = await self.manager.mta_sts.apply(domain, mx)  # enforce: allowed hosts only
        except DnsError as exc:
            # The queue's provider label says so, as KumoMTA names such a site.
            failure = "DNSFAIL" if exc.transient else "NXDOMAIN"
            self.manager.scheduled_totals.providers.learn_site(queue, f"{failure}:{domain}")
            # Even NXDOMAIN is retried (as KumoMTA does): DNS breaks and recovers.
            raise RoutingError(
                queue_unresolved(queue.name, f"MX lookup for {domain}: {exc}")
            ) from exc
        if mx.site_name == "":
            raise RoutingError(null_mx())
        return mx


def _undefined_source(queue: ScheduledQueue, source_name: str) -> RoutingError:
    return RoutingError(
        queue_unresolved(queue.name, f"egress source {source_name!r} is not defined")
    )
