"""The server's lifecycle: start services in dependency order, stop them in reverse.

Start: spools → log sinks → throttle store → queues → recovery of spooled messages →
listeners (so nothing is accepted before the queues can take it). Stop (SIGTERM/SIGINT):
listeners close first (no new work), in-flight deliveries finish or are left spooled,
log sinks flush, plugins shut down, spools close.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from kumocore.errors import ConfigError
from kumocore.intake import Intake
from kumocore.runtime import Runtime
from kumocore.spool.base import MemorySpool, Spool
from kumocore.spool.store import MessageStore

if TYPE_CHECKING:
    from kumocore.config import SpoolDefinition

log = structlog.get_logger("kumocore.server")


class Listener(Protocol):
    """A started listener (ESMTP or HTTP)."""

    @property
    def address(self) -> tuple[str, int]: ...

    async def close(self) -> None: ...


class Server:
    """Runs one loaded :class:`Runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.listeners: list[Listener] = []
        self.started = False
        self._unbound: list[Callable[[], Awaitable[Listener]]] | None = None

    def _make_spool(self, name: str, kinds: dict[str, Any]) -> Spool:
        definition: SpoolDefinition | None = self.runtime.config.spools.get(name)
        if definition is None:
            log.warning("no spool defined; messages are kept in memory only", spool=name)
            return MemorySpool(name)
        factory = kinds.get(definition.kind)
        if factory is None:
            raise ConfigError(f"spool kind {definition.kind!r} is not provided by any plugin")
        options = {k: v for k, v in definition.to_dict().items() if k not in ("name", "kind")}
        spool: Spool = factory(name=name, **options)
        return spool

    async def start(self, *, listen: bool = True) -> None:
        """Start everything; with ``listen=False`` stop short of the listeners.

        ``kumocore serve --workers N`` uses that: a worker opens its listeners only once
        every worker has recovered its spool, so the kernel never hands connections to a
        node that is half up (:meth:`start_listeners`).
        """
        runtime = self.runtime
        kinds = runtime.hooks.spool_kinds()
        runtime.store = MessageStore(
            self._make_spool("data", kinds), self._make_spool("meta", kinds)
        )
        await self._start_logs()
        self._start_throttles()
        from kumocore.queue.manager import QueueManager

        runtime.queues = QueueManager(runtime)
        runtime.intake = Intake(runtime)
        await runtime.queues.start()
        await self._recover()
        await self.prepare_listeners()
        if listen:
            await self.start_listeners()
        self.started = True

    async def _start_logs(self) -> None:
        from kumocore.logs.dispatch import LogDispatcher

        self.runtime.logs = LogDispatcher(self.runtime.hooks.log_sinks())
        await self.runtime.logs.start()

    def _start_throttles(self) -> None:
        from kumocore.throttle.local import LocalThrottleStore

        stores = self.runtime.hooks.throttle_stores()
        self.runtime.throttles = stores[0] if stores else LocalThrottleStore()

    async def _recover(self) -> None:
        """Hand every spooled message back to the queues (a 250 survives kill -9)."""
        runtime = self.runtime
        assert runtime.store is not None and runtime.intake is not None
        started = time.perf_counter()
        count = 0
        enumerated = runtime.hooks.implemented("spool_message_enumerated")
        async for message in runtime.store.recover():
            if enumerated:  # may re-bind it (meta 'queue'); an error stops the start-up
                await runtime.hooks.spool_message_enumerated(message)
            try:
                queue, config = await runtime.intake.resolve_queue_config(message)
            except Exception as exc:
                # The policy changed under a spooled message: keep it, use defaults.
                from kumocore.config import QueueConfig
                from kumocore.queue_name import message_queue_name

                log.error(
                    "queue config failed for recovered message; using defaults",
                    id=message.id,
                    error=str(exc),
                )
                queue, config = message_queue_name(message), QueueConfig.from_options({})
            if config is None:  # now routed to the null queue
                await runtime.store.remove(message.id)
                continue
            runtime.queues.insert(message, queue, config)
            count += 1
        log.info("spool recovered", messages=count, seconds=round(time.perf_counter() - started, 3))

    async def prepare_listeners(self) -> None:
        """Build every listener short of binding it: TLS contexts (a self-signed
        certificate is an RSA key generation) and apps, so that :meth:`start_listeners`
        only binds. Workers of one node then open their ports within moments of each
        other."""
        from kumocore.http.server import prepare_http_listener
        from kumocore.smtp.server import prepare_esmtp_listener

        config = self.runtime.config
        unbound: list[Callable[[], Awaitable[Listener]]] = []
        for esmtp in config.esmtp_listeners:
            unbound.append(await prepare_esmtp_listener(self.runtime, esmtp))
        for http in config.http_listeners:
            unbound.append(await prepare_http_listener(self.runtime, http))
        self._unbound = unbound

    async def start_listeners(self) -> None:
        """Bind and start the listeners (prepared first if :meth:`prepare_listeners` was
        not called)."""
        if self._unbound is None:
            await self.prepare_listeners()
        unbound, self._unbound = self._unbound or [], []
        for start in unbound:
            self.listeners.append(await start())
        for listener in self.listeners:
            host, port = listener.address[:2]
            log.info("listening", address=f"{host}:{port}", kind=type(listener).__name__)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let in-flight work finish (bounded), flush, close."""
        runtime = self.runtime
        for listener in self.listeners:
            await listener.close()
        self.listeners.clear()
        if runtime.queues is not None:
            await runtime.queues.stop(timeout=max(timeout - 2.0, 1.0))
        if runtime.logs is not None:
            await runtime.logs.close(timeout=2.0)
        await runtime.hooks.shutdown()
        if runtime.throttles is not None:
            await runtime.throttles.close()
        if runtime.store is not None:
            await runtime.store.close()
        self.started = False


async def serve(policy: str, *, shutdown_timeout: float = 10.0) -> int:
    """``kumocore serve``: load, start, run until SIGTERM/SIGINT, stop gracefully."""
    from kumocore.gctune import freeze_survivors, tune_for_server

    tune_for_server()
    runtime = Runtime()
    await runtime.load(policy)
    server = Server(runtime)
    await server.start()
    freeze_survivors()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Operators send SIGHUP expecting a reload; dying on it would drop every connection.
    loop.add_signal_handler(signal.SIGHUP, lambda: log.warning(
        "SIGHUP ignored: reloading the policy is not supported yet; restart to apply changes"))
    log.info("kumocore ready", policy=policy, hostname=runtime.hostname)
    await stop.wait()
    log.info("shutting down", timeout=shutdown_timeout)
    try:
        async with asyncio.timeout(shutdown_timeout):
            await server.stop(shutdown_timeout)
    except TimeoutError:
        log.error("shutdown timed out; spooled messages are recovered at next start")
    return 0
