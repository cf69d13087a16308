"""The automation engine of one node: match records, record actions, apply them.

Records reach :meth:`TsaEngine.observe` from the delivery outcomes of this node, and
:meth:`observe_json` from ``POST /publish_log_v1`` (KumoMTA nodes of a mixed fleet).
Matches and actions go to the :class:`~kumocore.tsa.store.ActionStore`; a sync loop reads
the store's active actions every ``interval`` seconds and applies what changed
(:mod:`kumocore.tsa.apply`), so every node sharing a Redis store applies an action within
about a second of any node recording it, and drops it when it expires or is cancelled.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.tsa.apply import Applier
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
    from kumocore.policy.hooks import Hooks
    from kumocore.queue.manager import QueueManager
    from kumocore.throttle.store import ThrottleStore

log = structlog.get_logger("kumocore.tsa")

#: ``rules_for(domain, site_name)`` → the rules that apply to a record for that path.
RulesFor = Callable[[str, str], "Sequence[Rule] | Awaitable[Sequence[Rule]]"]
#: Builds the action store at start from the node's throttle store (Redis holds actions).
StoreFactory = Callable[["ThrottleStore | None"], ActionStore]
#: Events a subscriber may fall behind before it is dropped (KumoMTA's channel holds as
#: many; its lagging subscriber is disconnected too).
SUBSCRIBER_BACKLOG = 128 * 1024


class TsaEngine:
    def __init__(
        self,
        hooks: Hooks,
        rules_for: RulesFor,
        store: ActionStore | StoreFactory | None,
        *,
        publish: Sequence[str] = (),
        match_locally: bool = True,
        could_match: Callable[[str, bool], bool] | None = None,
        interval: float = 0.5,
    ) -> None:
        self.rules_for = rules_for
        # A callable is resolved at start: the Redis store exists only once the server
        # has set up its throttle store (kumo.configure_redis_throttles runs in init).
        # None: this node only publishes (no actions to apply).
        self._store_spec = store
        self.store: ActionStore = (
            store if store is not None and not callable(store) else _NotStarted())
        self.match_locally = match_locally
        # A synchronous "could any rule match this response?": most records (deliveries)
        # are dropped here without a task.
        self.could_match = could_match
        self.spec: tuple[list[str], list[str]] = ([], [])  # publish, subscribe as configured
        self.publish = tuple(u.rstrip("/") for u in publish)
        self.interval = interval
        self.applier = Applier(hooks)
        self.actions: dict[str, ActiveAction] = {}  # as of the last sync
        self._next_sync: asyncio.Future[None] | None = None  # cancellations' shared sync
        self.counters = {"records": 0, "matches": 0, "triggered": 0, "errors": 0}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._subscribers: set[asyncio.Queue[ActiveAction]] = set()

    # ------------------------------------------------------------------ lifecycle
    def start(
        self, throttles: ThrottleStore | None = None, queues: QueueManager | None = None
    ) -> None:
        """Resolve the store and start applying actions to ``queues`` (none in the
        standalone ``kumocore tsa`` service); raises ConfigError if there is no store."""
        self.applier.queues = queues
        if callable(self._store_spec):
            self.store = self._store_spec(throttles)
        log.info("traffic shaping automation running", store=self.store.label,
                 publish=list(self.publish))  # fmt: skip
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._sync_loop())

    async def stop(self) -> None:
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for pending in list(self._tasks):
            pending.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        close = getattr(self.store, "close", None)  # an HTTP subscription's session
        if close is not None:
            await close()

    async def _sync_loop(self) -> None:
        failing = False
        while True:
            try:
                await self.sync()
            except Exception as exc:  # a store outage must not end automation
                if not failing:  # once per outage; the last actions read stay applied
                    log.warning("automation store unreachable; keeping the actions last read",
                                store=self.store.label, error=str(exc) or type(exc).__name__)
                failing = True
            else:
                if failing:
                    log.info("automation store reachable again", store=self.store.label)
                failing = False
            try:
                await asyncio.wait_for(self._wakeup.wait(), self.interval)
            except TimeoutError:
                pass
            self._wakeup.clear()

    async def sync(self) -> None:
        """Read the active actions and apply what changed since the last sync."""
        current = await self.store.active()
        previous, self.actions = self.actions, current
        await self.applier.apply(previous, current)
        for action_id, action in current.items():
            old = previous.get(action_id)
            if old is None or old.expires != action.expires:
                for queue in list(self._subscribers):
                    try:
                        queue.put_nowait(action)
                    except asyncio.QueueFull:  # a stuck one is dropped; others still get it
                        self._subscribers.discard(queue)

    def subscribe(self) -> asyncio.Queue[ActiveAction]:
        """New and extended actions from now on (``/subscribe_event_v1``)."""
        queue: asyncio.Queue[ActiveAction] = asyncio.Queue(maxsize=SUBSCRIBER_BACKLOG)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[ActiveAction]) -> None:
        self._subscribers.discard(queue)

    def subscribed(self, queue: asyncio.Queue[ActiveAction]) -> bool:
        """False once ``queue`` fell a full queue behind and was dropped."""
        return queue in self._subscribers

    # ------------------------------------------------------------------ records
    def held_until(self, path_name: str) -> float:
        """When the latest ``Suspend`` on the ready queue ``path_name`` ends (0: none)."""
        return self.applier.held_until.get(path_name, 0.0)

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

    # ------------------------------------------------------------------ operators
    async def list_actions(self) -> list[ActiveAction]:
        return sorted((await self.store.active()).values(), key=lambda a: (a.since, a.id))

    async def cancel(self, action_id: str) -> bool:
        found = await self.store.cancel(action_id)
        if found:
            await self._sync_after_cancel()
        return found

    async def _sync_after_cancel(self) -> None:
        """:meth:`sync` once for the cancellations that arrive together. (A sync per
        cancellation reads every action: 60 DELETEs at once among 20,000 actions held the
        loop for 0.29 s.) Each caller returns after a sync that began after its
        cancellation."""
        waiting = self._next_sync
        if waiting is None:
            waiting = self._next_sync = asyncio.get_running_loop().create_future()
            try:
                await asyncio.sleep(0)  # the others of this turn join this sync
                self._next_sync = None
                await self.sync()
            except Exception as exc:
                waiting.set_exception(exc)
            finally:
                if self._next_sync is waiting:
                    self._next_sync = None
                if not waiting.done():  # also when cancelled: the sync loop catches up
                    waiting.set_result(None)
        await asyncio.shield(waiting)

    def overrides_for(self, domain: str, source: str, site_name: str) -> dict[str, Any]:
        """The config options automation sets for a path now (later actions win)."""
        return self.applier.overrides_for(self.actions, domain, source, site_name)


class _NotStarted:
    label = "not started"

    async def count_match(self, scope: str, window: float, now: float) -> int:
        raise RuntimeError("traffic shaping automation is not started")

    async def put(self, action: ActiveAction) -> ActiveAction:
        raise RuntimeError("traffic shaping automation is not started")

    async def active(self) -> dict[str, ActiveAction]:
        return {}

    async def cancel(self, action_id: str) -> bool:
        return False


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
