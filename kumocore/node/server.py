"""The server's lifecycle: start services in dependency order, stop them in reverse.

Start: spools → log sinks → throttle store → queues → recovery of spooled messages →
listeners (so nothing is accepted before the queues can take it). Stop (SIGTERM/SIGINT):
listeners close first (no new work), in-flight deliveries finish or are left spooled,
the policy's ``shutdown_logging`` runs, log sinks flush, plugins shut down, spools close.
The listeners are :mod:`kumocore.node.server_listeners`; ``kumocore serve`` itself (signals)
is :mod:`kumocore.node.serve`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.errors import ConfigError
from kumocore.http.inject_deferred import DeferredGenerator
from kumocore.logs.journal import Journal
from kumocore.node.memory import MEMORY, MemoryMonitor
from kumocore.node.node_metrics import NodeMetrics
from kumocore.node.runtime import Runtime
from kumocore.node.server_listeners import Listener, ServerListeners, _reason
from kumocore.node.services import Services
from kumocore.queue.manager import QueueManager
from kumocore.reception.intake import Intake
from kumocore.spool.base import MemorySpool, Spool
from kumocore.spool.health import SpoolHealth
from kumocore.spool.store import MessageStore

if TYPE_CHECKING:
    from kumocore.config import SpoolDefinition
    from kumocore.logs.dispatch import LogDispatcher
    from kumocore.spool.storage_guard import StorageMonitor
    from kumocore.throttle.store import ThrottleStore

log = structlog.get_logger("kumocore.node.server")


class Server(ServerListeners):
    """Runs one loaded :class:`Runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.listeners: list[Listener] = []
        self.started = False
        self._unbound: list[tuple[str, Callable[[], Awaitable[Listener]]]] | None = None
        self._storage: StorageMonitor | None = None  # started first, stopped last
        self.memory = MemoryMonitor()
        self.spool_health = SpoolHealth()
        self._unwatch: Callable[[], None] = lambda: None

    def _make_spool(self, name: str, kinds: dict[str, Any]) -> Spool:
        definition: SpoolDefinition | None = self.runtime.config.spools.get(name)
        if definition is None:
            log.warning("no spool defined; messages are kept in memory only", spool=name)
            return MemorySpool(name)
        factory = kinds.get(definition.kind)
        if factory is None:
            raise ConfigError(f"spool kind {definition.kind!r} is not provided by any plugin")
        options = {k: v for k, v in definition.to_dict().items() if k not in ("name", "kind")}
        from kumocore.node.fsmode import private_dir, tighten_tree
        from kumocore.spool.recovering import RecoveringSpool

        private_dir(definition.path, f"spool {name!r}")  # 0700, ours, nobody else's

        def open_spool() -> Spool:
            spool: Spool = factory(name=name, **options)
            tighten_tree(definition.path)  # files the kind created under a laxer umask
            return spool

        try:
            # Reopened after a failed write (a full disk), so reception recovers by itself.
            return RecoveringSpool(open_spool, self._storage_failed)
        except ConfigError:
            raise
        except Exception as exc:  # a spool that cannot open is a start-up error, not a crash
            raise ConfigError(
                f"spool {name!r} ({definition.kind}) at {definition.path}: cannot open: "
                f"{_reason(exc)}"
            ) from exc

    def _storage_failed(self) -> None:
        self.spool_health.write_failed()
        if self._storage is not None:
            self._storage.check()

    async def start(self, *, listen: bool = True,
                    before_recovery: Callable[[Services], Awaitable[object]] | None = None,
                    ) -> None:  # fmt: skip
        """Start everything; with ``listen=False`` stop short of the listeners.

        ``kumocore serve --workers N`` uses that: a worker opens its listeners only once
        every worker has recovered its spool, so the kernel never hands connections to a
        node that is half up (:meth:`start_listeners`). It also passes ``before_recovery``,
        run once the queues exist and before any spooled message reaches them: a restarted
        worker takes on the node's admin rules there, so none of its messages slips past.
        """
        runtime = self.runtime
        from kumocore.spool.storage_guard import StorageMonitor

        storage = self._storage = StorageMonitor.for_spools(runtime.config.spools.values())
        storage.start()
        kinds = runtime.hooks.spool_kinds()
        store = MessageStore(self._make_spool("data", kinds), self._make_spool("meta", kinds))
        from kumocore.logs.dispatch import LogDispatcher
        from kumocore.logs.filter_event import policy_log_filter

        logs = LogDispatcher(runtime.hooks.log_sinks(), log_filter=policy_log_filter(runtime.pm))
        await logs.start()
        services = wire_services(
            runtime, store=store, logs=logs, throttles=self._throttles(), storage=storage
        )
        self._watch_memory_and_spool_health(services)
        services.metrics.cpu.start()  # KumoMTA's CPU usage gauges, every 3 s
        await services.queues.start()
        if services.tsa is not None:
            # after the throttle store (Redis holds automation state) and the queues
            services.tsa.start(services.throttles, services.queues)
        if before_recovery is not None:
            await before_recovery(services)
        await self._recover(services)
        await self.prepare_listeners()
        if listen:
            await self.start_listeners()
        self.started = True

    def _watch_memory_and_spool_health(self, services: Services) -> None:
        """Memory limits shrink this node's ready queues; a spool that recovers from a
        failed write wakes them (kumocore.node.memory, kumocore.spool.health)."""
        from kumocore.queue.pressure import shrink_all

        paths = services.queues.paths

        def wake_all() -> None:
            for path in list(paths.values()):
                path.wake()

        from kumocore.queue.spool_hold import SpoolHold

        queues = services.queues
        hold = SpoolHold(queues, queues.delays)
        queues.egress.spool_hold = hold.defer
        self.spool_health.start(services.store, wake_all, lambda: hold.take_all(paths.values()))
        self._unwatch = MEMORY.on_over_limit(lambda: shrink_all(paths.values()))
        self.memory.start()

    def _throttles(self) -> ThrottleStore:
        from kumocore.throttle.local import LocalThrottleStore

        stores = self.runtime.hooks.throttle_stores()
        node = self.runtime.node
        if stores:
            return stores[0]  # shared across workers and nodes (Redis)
        if node is not None:
            # serve --workers N: one store for the node, kept by the supervisor.
            from kumocore.throttle.node import NodeThrottleStore, socket_path

            return NodeThrottleStore(socket_path(node.node_dir))
        return LocalThrottleStore()

    async def _recover(self, services: Services) -> None:
        """Hand every spooled message back to the queues (a 250 survives kill -9)."""
        started, cpu_started = time.perf_counter(), time.process_time()
        count = await self._recover_all(services)
        log.info(
            "spool recovered",
            messages=count,
            seconds=round(time.perf_counter() - started, 3),
            cpu_seconds=round(time.process_time() - cpu_started, 3),
        )

    async def _recover_all(self, services: Services) -> int:
        hooks = services.hooks
        count = 0
        enumerated = hooks.implemented("spool_message_enumerated")
        async for batch in services.store.recover_batches():
            for message in batch:
                if enumerated:  # may re-bind it (meta 'queue'); an error stops the start-up
                    await hooks.spool_message_enumerated(message)
                try:
                    queue, config = await services.intake.resolve_queue_config(message)
                except Exception as exc:
                    # The policy changed under a spooled message: keep it, use defaults.
                    from kumocore.config import QueueConfig
                    from kumocore.mail.queue_name import message_queue_name

                    log.error(
                        "queue config failed for recovered message; using defaults",
                        id=message.id,
                        error=str(exc),
                    )
                    queue, config = message_queue_name(message), QueueConfig.from_options({})
                if config is None:  # now routed to the null queue
                    await services.store.remove(message.id)
                    continue
                services.queues.insert(message, queue, config)
                count += 1
        return count

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let in-flight work finish (bounded), flush, close."""
        runtime = self.runtime
        for listener in self.listeners:
            await listener.close()
        self.listeners.clear()
        services = runtime.services
        # Messages held in memory (deferred_spool) are written now, while the deliveries
        # in flight finish: left to store.close(), they waited for those deliveries and
        # a shutdown running out of time lost them.
        held = None if services is None else asyncio.ensure_future(services.store.write_held())
        if services is not None and services.tsa is not None:
            await services.tsa.stop()
        if services is not None:
            await services.queues.stop(timeout=max(timeout - 2.0, 1.0))
        if held is not None:
            await held
        # KumoMTA's shutdown_logging: the policy closes what feeds its own loggers (mpsc
        # queues) just before the log sinks go; bounded, so a stuck handler cannot hang us.
        await runtime.hooks.shutdown_logging()
        if services is not None:
            await services.logs.close(timeout=2.0)
        await runtime.http_access.close()  # the HTTP accounting log's open segment
        await runtime.hooks.shutdown()
        if services is not None:
            await services.throttles.close()
            await services.store.close()
        await self.spool_health.stop()
        self._unwatch()
        await self.memory.stop()
        if services is not None:
            await services.metrics.cpu.stop()
        if self._storage is not None:
            await self._storage.stop()
        self.started = False


def wire_services(
    runtime: Runtime,
    *,
    store: MessageStore,
    logs: LogDispatcher,
    throttles: ThrottleStore,
    storage: StorageMonitor,
) -> Services:
    """Build the queues and intake over started spools, logs and throttles, freeze
    everything into the node's :class:`Services` and give it to ``runtime``.

    The one place the parts are wired (the server's start, and tests that run a node's
    parts without listeners)."""
    metrics = NodeMetrics()
    journal = Journal(logs, runtime.nodeid, runtime.hooks.classify_bounce)
    queues = QueueManager(
        hooks=runtime.hooks, resolver=runtime.resolver, store=store, logs=logs,
        journal=journal, hostname=runtime.hostname, nodeid=runtime.nodeid,
        throttles=throttles, tsa=runtime.tsa,
    )  # fmt: skip
    intake = Intake(
        hooks=runtime.hooks, store=store, logs=logs, journal=journal, queues=queues,
        nodeid=runtime.nodeid, receptions=metrics.receptions, storage=storage,
        generate=DeferredGenerator(runtime).generate,
    )  # fmt: skip
    queues.resolve_queue = intake.resolve_queue_config  # deferred injection re-queues
    services = Services(
        hostname=runtime.hostname, nodeid=runtime.nodeid, hooks=runtime.hooks,
        resolver=runtime.resolver, store=store, logs=logs, journal=journal,
        throttles=throttles,
        storage=storage, queues=queues, intake=intake, metrics=metrics, tsa=runtime.tsa,
        node=runtime.node,
    )  # fmt: skip
    runtime.services = services
    return services
