"""Answering "may this session do PRIVILEGE on RESOURCE?" (KumoMTA's
``AccessControlList::query_resource_access``), with its two caches.

For each candidate name of the resource, most specific first, the ACL is asked of the
policy's ``get_acl_definition`` event; when the event answers nil (or no policy handles
it) and ``kumo.aaa.set_fall_back_to_acl_map`` was not set to false, the product default
map answers (:data:`kumocore.http.acl_map.DEFAULT_ACL_MAP`). The first ACL with a rule
matching the privilege and the session decides; none: denied by default.

Caches, as KumoMTA's: ACL definitions per resource name (``set_acl_cache_ttl``) and
decisions per (resource, privilege, auth info) (``set_check_cache_ttl``), each holding
at most :data:`CACHE_CAPACITY` entries (least recently used dropped first) for at most
its TTL (default 5 minutes, as KumoMTA documents); ``kumo.set_lruttl_cache_capacity``
sizes them by KumoMTA's names, ``acl_definition`` and ``acl_check``. Errors of the event
are not cached. State is per policy (per :class:`~kumocore.policy.hooks.Hooks`), so two nodes in one
process (tests) do not share it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from kumocore.auth_info import AclAuthInfo
from kumocore.errors import ConfigError
from kumocore.http.acl import AccessControlList
from kumocore.http.acl_acct import AcctLog, timestamp
from kumocore.http.acl_map import DEFAULT_ACL_MAP
from kumocore.http.acl_resource import HttpUrlResource
from kumocore.node.cache_capacity import TtlCache

log = structlog.get_logger("kumocore.http.acl")

#: Entries each cache holds (KumoMTA's ``acl_definition`` and ``acl_check`` capacity).
CACHE_CAPACITY = 128
DEFAULT_TTL = 300.0

#: resource name -> (a policy handles get_acl_definition, its answer).
Provider = Callable[[str], Awaitable[tuple[bool, AccessControlList | None]]]


@dataclass(frozen=True, slots=True)
class AclDecision:
    """What ``kumo.aaa.query_resource_access`` returns: ``allow``; the deciding ``rule``
    (its table form) and the ``resource`` it belongs to, both nil when no rule matched."""

    allow: bool
    resource: str | None = None
    rule: dict[str, Any] | None = None
    target_resource: str = ""
    considered_resources: tuple[str, ...] = field(default=())

    @property
    def explicit(self) -> bool:
        return self.rule is not None


def parse_ttl(value: Any, who: str) -> float:
    """A duration (``'5 minutes'``, seconds as a number) in seconds, >= 0."""
    from kumocore.config.duration import parse_duration

    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(f"{who}: expected a duration, got {value!r:.80}")
    seconds = parse_duration(value, key=who)
    if not 0 <= seconds <= 365 * 86400:
        raise ConfigError(f"{who}: {value!r} is out of range (0 to 365 days)")
    return seconds


class AccessControl:
    """The ACL settings and caches of one policy."""

    def __init__(self, provider: Provider, clock: Callable[[], float] = time.monotonic) -> None:
        self.provider = provider
        self.clock = clock
        self.fall_back_to_acl_map = True
        self.acl_cache_ttl = DEFAULT_TTL
        self.check_cache_ttl = DEFAULT_TTL
        self.definitions: TtlCache[str, AccessControlList | None] = TtlCache(
            CACHE_CAPACITY, name="acl_definition"
        )
        self.checks: TtlCache[tuple[str, str, AclAuthInfo], AclDecision] = TtlCache(
            CACHE_CAPACITY, name="acl_check"
        )
        self.acct: AcctLog | None = None  # kumo.aaa.configure_acct_log

    async def close(self, timeout: float = 5.0) -> None:
        """At the node's stop: write what the accounting log holds, then finish its open
        segment (off the loop), so it is marked done now rather than at the next start.
        Writes that do not finish within ``timeout`` (a stuck disk) are left to their
        thread and the records still queued are logged as lost: the segment the write
        holds is not touched under it, and the next start marks it done."""
        acct = self.acct
        if acct is None:
            return
        try:
            await asyncio.wait_for(acct.drain(), timeout)
        except TimeoutError:
            log.error("accounting log not written in time at stop; its queued records are "
                      "lost", queued=len(acct.queue), timeout=timeout)  # fmt: skip
            return
        await asyncio.to_thread(acct.close)

    async def definition(self, resource: str) -> AccessControlList | None:
        hit, cached = self.definitions.get(resource, self.clock())
        if hit:
            return cached
        defined, acl = await self.provider(resource)
        if acl is None and (not defined or self.fall_back_to_acl_map):
            acl = DEFAULT_ACL_MAP.get(resource)
        self.definitions.put(resource, acl, self.clock() + self.acl_cache_ttl)
        return acl

    async def query(
        self, resource: HttpUrlResource, info: AclAuthInfo, privilege: str
    ) -> AclDecision:
        key = (resource.resource_id, privilege, info)
        hit, decision = self.checks.get(key, self.clock())
        if not hit or decision is None:
            decision = await self._decide(resource, info, privilege)
            self.checks.put(key, decision, self.clock() + self.check_cache_ttl)
        if self.acct is not None:
            self._account(self.acct, decision, info, privilege)
        return decision

    @staticmethod
    def _account(acct: AcctLog, decision: AclDecision, info: AclAuthInfo, privilege: str) -> None:
        if not acct.wants("log_authz_allow" if decision.allow else "log_authz_deny"):
            return
        acct.submit(
            {
                "type": "Authorization",
                "timestamp": timestamp(),
                "target_resource": decision.target_resource,
                "privilege": privilege,
                "access": "Allow" if decision.allow else "Deny",
                "matching_resource": decision.resource,
                "rule": decision.rule,
                "auth_info": info.to_dict(),
                "considered_resources": list(decision.considered_resources),
            }
        )

    async def _decide(
        self, resource: HttpUrlResource, info: AclAuthInfo, privilege: str
    ) -> AclDecision:
        considered: list[str] = []
        for name in resource.candidates:
            acl = await self.definition(name)
            rule = acl.decide(info, privilege) if acl is not None else None
            if rule is not None:
                return AclDecision(
                    rule.allow, name, rule.to_dict(), resource.resource_id, tuple(considered)
                )
            considered.append(name)
        return AclDecision(False, None, None, resource.resource_id, tuple(considered))


def access_control_for(hooks: Any) -> AccessControl:
    """The :class:`AccessControl` of the policy behind ``hooks`` (the node makes one, at
    start, and keeps it: ``PolicyHost.http_access``)."""

    async def provider(resource: str) -> tuple[bool, AccessControlList | None]:
        return (
            hooks.implemented("get_acl_definition"),
            await hooks.get_acl_definition(resource),
        )

    return AccessControl(provider)
