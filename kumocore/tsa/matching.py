"""How records become automation actions: the matching half of the engine.

A record reaches :meth:`RecordMatching.observe` from this node's delivery outcomes, or
:meth:`~RecordMatching.observe_json` / :meth:`~RecordMatching.consider_json` from
``POST /publish_log_v1``. It is matched against the rules for its domain and site; a rule
that triggers (at once, or when its threshold of matches is reached) records one action
per rule action in the store, under KumoMTA's id form and with its daemon's wording of the
reason, or is published to the configured TSA services.

Its own module because reading the recorded actions back and applying them is the other
concern of the engine, :class:`~kumocore.tsa.engine.TsaEngine` (of which this class is the
base). The two share the store, the counters and the actions as of the last sync.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.tsa.rules import (
    INTERNAL_PREFIX,
    UNINTERESTING_TYPES,
    RecordView,
    Rule,
    names_postmaster,
    view_of_json,
)
from kumocore.tsa.store import ActionStore, ActiveAction

if TYPE_CHECKING:
    from kumocore.logs.record import LogRecord

log = structlog.get_logger("kumocore.tsa")

#: ``rules_for(domain, site_name)`` → the rules that apply to a record for that path.
RulesFor = Callable[[str, str], "Sequence[Rule] | Awaitable[Sequence[Rule]]"]


class RecordMatching:
    """The matching half of :class:`kumocore.tsa.engine.TsaEngine` (see the module doc)."""

    if TYPE_CHECKING:  # TsaEngine's attributes, for the type checker only
        rules_for: RulesFor
        store: ActionStore
        match_locally: bool
        could_match: Callable[[str, bool], bool] | None
        publish: tuple[str, ...]
        actions: dict[str, ActiveAction]
        counters: dict[str, int]
        _tasks: set[asyncio.Task[Any]]
        _wakeup: asyncio.Event

    __slots__ = ()

    def observe(self, record: LogRecord) -> None:
        """A record of this node's outcomes (cheap when no rule could match)."""
        # A batch's record names several recipients: the first names the domain (as it
        # named the queue).
        recipient = record.recipient if type(record.recipient) is str else record.recipient[0]
        if record.type in UNINTERESTING_TYPES or "@" not in recipient:
            return
        content = record.response.content
        line = record.response.to_single_line().replace("\r", "").replace("\n", " ")
        internal = content.startswith(INTERNAL_PREFIX)
        if self.could_match is not None and not self.could_match(line, internal):
            return
        view = RecordView(
            type=str(record.type),
            domain=recipient.rsplit("@", 1)[1].lower(),
            site=record.site,
            source=record.egress_source or "unspecified",
            queue=record.queue,
            response=line,
            internal=internal,
            timestamp=record.timestamp,
        )
        self._spawn(self._observe(view, record))

    def observe_json(self, record: Mapping[str, Any]) -> bool:
        """A KumoMTA JSON record POSTed to this node; False if it names no recipient."""
        if names_postmaster(record):
            return True  # accepted and ignored, as KumoMTA's daemon does
        view = view_of_json(record)
        if view is None:
            return False
        if view.type not in UNINTERESTING_TYPES:
            self._spawn(self._observe(view, None))
        return True

    async def consider_json(self, record: Mapping[str, Any]) -> bool:
        """:meth:`observe_json`, matched and recorded before it returns (not in a task
        per record): ``/publish_log_v1``'s way, see :mod:`kumocore.tsa.publish`."""
        if names_postmaster(record):
            return True
        view = view_of_json(record)
        if view is None:
            return False
        if view.type not in UNINTERESTING_TYPES:
            await self._observe(view, None)
        return True

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _observe(self, view: RecordView, record: LogRecord | None) -> None:
        try:
            self.counters["records"] += 1
            rules = self.rules_for(view.domain, view.site_name)
            if inspect.isawaitable(rules):
                rules = await rules
            matched = [r for r in rules if r.matches(view.response, view.internal)]
            if not matched:
                return
            self.counters["matches"] += len(matched)
            if record is not None and self.publish:
                await self._publish(record)
            if not self.match_locally:
                return  # the service we publish to acts on the matches
            if any([await self._consider(rule, view) for rule in matched]):
                self._wakeup.set()  # apply on this node now, not at the next tick
        except Exception as exc:
            self.counters["errors"] += 1
            if self.counters["errors"] & (self.counters["errors"] - 1) == 0:  # 1, 2, 4, 8...
                log.warning("automation could not process a record", site=view.site,
                            error=str(exc) or type(exc).__name__, errors=self.counters["errors"])

    async def _consider(self, rule: Rule, view: RecordView) -> bool:
        now = time.time()
        stamp = view.timestamp or now
        if stamp + rule.duration <= now:
            return False  # a late record whose action would already be over
        count = 1
        if rule.threshold is not None:
            window = rule.duration
            count = await self.store.count_match(f"{rule.hash}:{view.site}", window, now)
            if count < rule.threshold:
                return False
        self.counters["triggered"] += 1
        for action in rule.actions:
            tenant, campaign = _tenant_campaign(view.queue)
            # A tenant's (or campaign's) suspension is its own action, as in KumoMTA: one
            # tenant matching the rule must not replace another's hold.
            scope = ""
            if action.kind == "SuspendTenant":
                scope = f"/{view.domain}/{tenant}"
            elif action.kind == "SuspendCampaign":
                scope = f"/{view.domain}/{tenant}/{campaign}"
            # KumoMTA's form: "<site>-<sha256 hex>" (its hash input differs; ours is stable).
            digest = hashlib.sha256(
                f"{rule.hash}/{action.describe()}{scope}".encode()).hexdigest()
            entry = ActiveAction(
                id=f"{view.site}-{digest}", kind=action.kind, rule=rule.origin,
                reason=_reason(rule, action.kind, view.domain, tenant, campaign),
                site=view.site, site_name=view.site_name,
                source=view.source, domain=view.domain, since=now,
                expires=stamp + rule.duration, tenant=tenant,
                campaign=campaign if action.kind == "SuspendCampaign" else None,
                name=action.name, value=action.value, matches=count,
            )  # fmt: skip
            if action.kind in ("SuspendTenant", "SuspendCampaign") and tenant is None:
                log.error("automation: a tenant suspension needs a queue with a tenant",
                          rule=rule.origin, queue=view.queue)  # fmt: skip
                continue
            known = entry.id in self.actions
            await self.store.put(entry)
            # At info once per action: a flood of matching records would be a line each.
            (log.debug if known else log.info)(
                "automation action recorded", id=entry.id, action=action.describe(),
                rule=rule.origin, until=entry.expires)  # fmt: skip
        return True

    async def _publish(self, record: LogRecord) -> None:
        """Send a matching record to the configured TSA daemons (best effort)."""
        import aiohttp

        body = record.to_json_bytes() if hasattr(record, "to_json_bytes") else b""
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for url in self.publish:
                try:
                    async with session.post(f"{url}/publish_log_v1", data=body,
                                            headers={"Content-Type": "application/json"}) as r:
                        if r.status >= 300:
                            log.warning("TSA publish refused", url=url, status=r.status)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    log.warning("TSA publish failed", url=url, error=str(exc))


def _reason(
    rule: Rule, kind: str, domain: str, tenant: str | None, campaign: str | None
) -> str:
    """The action's ``reason`` as KumoMTA's daemon words it: a tenant (or campaign)
    suspension names what it holds, ``... tenant=T domain=D[ campaign=C]``."""
    reason = rule.describe()
    if kind not in ("SuspendTenant", "SuspendCampaign"):
        return reason
    reason += f" tenant={tenant} domain={domain}"
    if kind == "SuspendCampaign" and campaign is not None:
        reason += f" campaign={campaign}"
    return reason


def _tenant_campaign(queue: str) -> tuple[str | None, str | None]:
    from kumocore.mail.queue_name import parse_queue_name

    parts = parse_queue_name(queue)
    return parts.tenant, parts.campaign
