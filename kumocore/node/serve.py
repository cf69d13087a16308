"""``kumocore serve``: one process that loads the policy, starts a :class:`Server` and
runs it until SIGTERM or SIGINT, then stops it within a bound (each ``--workers`` worker
runs its server the same way: :func:`run_until_stopped`).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import structlog

from kumocore.node.runtime import Runtime
from kumocore.node.server import Server

log = structlog.get_logger("kumocore.node.server")  # the same log as the server's


async def serve(policy: str, *, shutdown_timeout: float = 10.0) -> int:
    """``kumocore serve``: load, start, run until SIGTERM/SIGINT, stop gracefully."""
    from kumocore.node.gctune import freeze_survivors, tune_for_server

    tune_for_server()
    runtime = Runtime()
    await runtime.load(policy)
    # One process owns the spool paths themselves: take back the mail of worker shards a
    # run with --workers N left there (kumocore.spool.shards).
    from kumocore.spool.shards import migrate

    await migrate(runtime.config.spools, runtime.hooks.spool_kinds(), 1)
    server = Server(runtime)
    await server.start()
    # Operators send SIGHUP expecting a reload; dying on it would drop every connection.
    stop = catch_stop_signals(lambda: log.warning("SIGHUP ignored: reloading the policy "
                                                  "is not supported yet; restart to apply "
                                                  "changes"))
    freeze_survivors()
    await run_until_stopped(
        server, shutdown_timeout, stop=stop,
        ready=lambda: log.info("kumocore ready: 1 worker", workers=1, policy=policy,
                               hostname=runtime.hostname),
    )  # fmt: skip
    log.info("kumocore stopped")
    return 0


def catch_stop_signals(on_sighup: Callable[[], None]) -> asyncio.Event:
    """Handle SIGTERM and SIGINT (they set the returned event) and SIGHUP from now on.

    A worker calls this before it tells the supervisor it listens: a SIGTERM sent on
    seeing ``kumocore ready`` used to find it still collecting garbage with the default
    handler in place, which killed it without its graceful stop (or its
    ``shutdown_logging``)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    return stop


async def run_until_stopped(
    server: Server,
    shutdown_timeout: float,
    *,
    stop: asyncio.Event,
    ready: Callable[[], None],
    **log_fields: object,
) -> None:
    """Serve until ``stop`` is set (by :func:`catch_stop_signals`), then stop ``server``
    within ``shutdown_timeout`` (``kumocore serve`` and each ``--workers`` worker).
    ``ready`` runs first: the handlers are already in place, so a signal sent on seeing
    it is never missed."""
    ready()
    await stop.wait()
    log.info("shutting down", timeout=shutdown_timeout, **log_fields)
    try:
        async with asyncio.timeout(shutdown_timeout):
            await server.stop(shutdown_timeout)
    except TimeoutError:
        log.error("shutdown timed out; spooled messages are recovered at next start")
