"""Applying automation actions to this node's queues, and undoing them.

* ``Suspend`` holds the ready queue (egress path) the matching record named: no new
  connection, open ones stop after their current message, until the action ends.
* ``SuspendTenant`` / ``SuspendCampaign`` become suspension rules of the queue manager
  (the ones ``/api/admin/suspend/v1`` makes), keyed by the action's id.
* ``SetConfig`` / ``SetDomainConfig`` override egress path options. The shaping helper's
  ``get_egress_path_config`` asks :meth:`Applier.overrides_for`; when the overrides of a
  path change, its ready queues fetch their configuration again at once.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.policy.refresh import Freshness
from kumocore.queue.admin import QueueRule
from kumocore.tsa.store import ActiveAction

if TYPE_CHECKING:
    from kumocore.policy.hooks import Hooks
    from kumocore.queue.manager import QueueManager
    from kumocore.queue.path import EgressPath

log = structlog.get_logger("kumocore.tsa")

_SCHEDULED = ("SuspendTenant", "SuspendCampaign")
_CONFIG = ("SetConfig", "SetDomainConfig")
_ADMIN = ("AdminSuspend", "AdminBounce", "AdminSuspendReadyQ")


class Applier:
    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks
        #: The node's queues, given at start (None: a standalone automation service).
        self.queues: QueueManager | None = None
        #: Ready queue name → end of the latest Suspend on it (new queues start held).
        self.held_until: dict[str, float] = {}
        # The config actions of the last sync by (source, "site" | "domain", name), oldest
        # first: a path's configuration looks up its own, not every action (40,000
        # actions sorted and scanned took 20 ms a path). Made when a path first asks
        # after a sync that changed them (None: to be made from ``_actions``).
        self._actions: Mapping[str, ActiveAction] = {}
        self._config: dict[tuple[str, str, str], list[ActiveAction]] | None = {}

    async def apply(
        self, previous: Mapping[str, ActiveAction], current: Mapping[str, ActiveAction]
    ) -> None:
        self._actions = current
        manager = self.queues
        if manager is None:
            self._config = None
            return
        for action_id, gone in previous.items():
            if action_id not in current and gone.kind in (*_SCHEDULED, "AdminSuspend"):
                manager.cancel_suspension(action_id)
            elif action_id not in current and gone.kind == "AdminBounce":
                manager.cancel_bounce(action_id)
            elif action_id not in current and gone.kind == "AdminSuspendReadyQ":
                manager.egress.ready_holds.cancel(action_id)
        self._admin_rules(manager, current)
        for action_id, action in current.items():
            old = previous.get(action_id)
            if action.kind in _SCHEDULED and (old is None or old.expires != action.expires):
                manager.add_suspension(_queue_rule(action))
        self._hold_ready_queues(manager, current)
        changed = _config_changes(previous, current)
        if changed:
            self._config = None
            await self._refresh(manager, changed)

    @staticmethod
    def _admin_rules(manager: Any, current: Mapping[str, ActiveAction]) -> None:
        """Operator rules shared by other nodes (kumocore.tsa.admin_share)."""
        from kumocore.tsa.admin_share import ready_suspension_of, rule_of

        holds = manager.egress.ready_holds
        # Oldest first: of two suspensions of one ready queue, the newer one stays. (Only
        # the operators' few are sorted, at every sync: not every automation action.)
        shared = [a for a in current.values() if a.kind in _ADMIN]
        for action in sorted(shared, key=attrgetter("since")):
            if action.kind == "AdminSuspend" and action.id not in manager.admin.suspensions:
                manager.add_suspension(rule_of(action))
            elif action.kind == "AdminBounce" and action.id not in manager.admin.bounces:
                manager.apply_bounce_rule(rule_of(action))
            elif action.kind == "AdminSuspendReadyQ" and action.id not in holds:
                holds.add(ready_suspension_of(action))

    def _hold_ready_queues(self, manager: Any, current: Mapping[str, ActiveAction]) -> None:
        """Every ready queue holds until its latest Suspend action ends (new ones too)."""
        until: dict[str, float] = {}
        for action in current.values():
            if action.kind == "Suspend":
                until[action.site] = max(until.get(action.site, 0.0), action.expires)
        self.held_until = until
        ready: EgressPath
        for ready in list(manager.paths.values()):
            # An operator's ready-queue suspension holds on, whatever automation says.
            name = ready.key.name
            ready.suspend_until(max(until.get(name, 0.0),
                                    manager.egress.ready_holds.held_until(name)))

    async def _refresh(self, manager: Any, changed: set[tuple[str, str]]) -> None:
        ready: EgressPath
        for ready in list(manager.paths.values()):
            if (ready.key.site, ready.key.source) not in changed and (
                ready.domain, ready.key.source) not in changed:
                continue
            try:
                config = await self.hooks.get_egress_path_config(
                    ready.domain, ready.key.source, ready.key.site)
            except Exception as exc:
                log.warning("automation: path configuration refresh failed",
                            path=ready.key.name, error=str(exc))  # fmt: skip
                continue
            if config is not None:
                ready.reconfigure(config, Freshness.now(config, self.hooks.config_epoch))
                log.info("automation: path configuration refreshed", path=ready.key.name)

    def overrides_for(self, domain: str, source: str, site_name: str) -> dict[str, Any]:
        """The options the config actions of the last sync set for a path (later win)."""
        config = self._config
        if config is None:
            config = self._config = _config_index(self._actions)
        by_site = config.get((source, "site", site_name), ())
        by_domain = config.get((source, "domain", domain.lower()), ())
        result: dict[str, Any] = {}
        for action in heapq.merge(by_site, by_domain, key=attrgetter("since")):
            if action.active:
                result[str(action.name)] = action.value
        return result


def _config_index(
    actions: Mapping[str, ActiveAction],
) -> dict[tuple[str, str, str], list[ActiveAction]]:
    """:attr:`Applier._config` for ``actions``."""
    index: dict[tuple[str, str, str], list[ActiveAction]] = {}
    for action in actions.values():
        if action.kind == "SetConfig":
            index.setdefault((action.source, "site", action.site_name), []).append(action)
        elif action.kind == "SetDomainConfig":
            index.setdefault((action.source, "domain", action.domain), []).append(action)
    for entries in index.values():
        entries.sort(key=attrgetter("since"))
    return index


def _queue_rule(action: ActiveAction) -> QueueRule:
    return QueueRule(
        reason=f"{action.reason} (rule_hash={action.id})",
        expires=action.expires,
        duration=max(0.0, action.expires - action.since),
        tenant=action.tenant,
        campaign=action.campaign,
        domain=action.domain,
        id=action.id,
    )


def _config_changes(
    previous: Mapping[str, ActiveAction], current: Mapping[str, ActiveAction]
) -> set[tuple[str, str]]:
    """The (site or domain, source) pairs whose overrides differ between two syncs."""
    changed: set[tuple[str, str]] = set()
    for action_id in set(previous) | set(current):
        old, new = previous.get(action_id), current.get(action_id)
        if old is not None and new is not None and (old.value, old.expires) == (
            new.value, new.expires):
            continue
        for action in (old, new):
            if action is not None and action.kind in _CONFIG:
                where = action.site_name if action.kind == "SetConfig" else action.domain
                changed.add((where, action.source))
    return changed
