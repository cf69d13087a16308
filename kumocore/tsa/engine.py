"""The automation engine of one node: match records, record actions, apply them.

Records reach :meth:`TsaEngine.observe` from the delivery outcomes of this node, and
:meth:`observe_json` from ``POST /publish_log_v1`` (KumoMTA nodes of a mixed fleet).
Matches and actions go to the :class:`~kumocore.tsa.store.ActionStore` (that half is the
base class, :mod:`kumocore.tsa.matching`); a sync loop reads
the store's active actions every ``interval`` seconds and applies what changed
(:mod:`kumocore.tsa.apply`), so every node sharing a Redis store applies an action within
about a second of any node recording it, and drops it when it expires or is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.node.stepwise import run_stepwise, sorted_steps
from kumocore.tsa.apply import Applier
from kumocore.tsa.matching import RecordMatching, RulesFor
from kumocore.tsa.store import ActionStore, ActiveAction

if TYPE_CHECKING:
    from kumocore.policy.hooks import Hooks
    from kumocore.queue.manager import QueueManager
    from kumocore.throttle.store import ThrottleStore

log = structlog.get_logger("kumocore.tsa")

#: Builds the action store at start from the node's throttle store (Redis holds actions).
StoreFactory = Callable[["ThrottleStore | None"], ActionStore]
#: Events a subscriber may fall behind before it is dropped (KumoMTA's channel holds as
#: many; its lagging subscriber is disconnected too).
SUBSCRIBER_BACKLOG = 128 * 1024


class TsaEngine(RecordMatching):
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
        if not self._subscribers:
            return  # (the comparison below walks every action: 8 ms for 40,000)
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

    # ------------------------------------------------------------------ holds
    def held_until(self, path_name: str) -> float:
        """When the latest ``Suspend`` on the ready queue ``path_name`` ends (0: none)."""
        return self.applier.held_until.get(path_name, 0.0)

    # ------------------------------------------------------------------ operators
    async def list_actions(self) -> list[ActiveAction]:
        """Every active action, oldest first (sorted a slice at a time: there may be tens
        of thousands)."""
        actions = (await self.store.active()).values()
        return await run_stepwise(sorted_steps(actions, key=attrgetter("since", "id")))

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
        return self.applier.overrides_for(domain, source, site_name)


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
