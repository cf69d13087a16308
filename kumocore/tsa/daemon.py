"""``kumocore tsa serve``: automation as a service of its own (KumoMTA's tsa-daemon role).

It loads a policy that sets automation up (``shaping:setup_with_automation`` with
``subscribe = {'redis-throttles'}`` or ``{'local'}``; ``init`` may call
``kumo.configure_redis_throttles``), and serves only the automation endpoints: KumoMTA
nodes publish to ``/publish_log_v1`` and subscribe to it; kumocore nodes subscribe with
``subscribe = {'http://host:port'}`` or share its Redis. No spool, queues or listeners of
the policy are started. Only peers in ``--trusted-host`` (default: loopback) are served.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
from collections.abc import Awaitable, Callable, Sequence

import structlog
from aiohttp import web

from kumocore.errors import ConfigError

log = structlog.get_logger("kumocore.tsa")


def _trust(trusted: Sequence[str]) -> Callable[..., Awaitable[web.StreamResponse]]:
    networks = [ipaddress.ip_network(t, strict=False) for t in trusted]

    @web.middleware
    async def guard(request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:  # fmt: skip
        peer = request.remote or ""
        try:
            allowed = any(ipaddress.ip_address(peer) in n for n in networks)
        except ValueError:
            allowed = False
        if not allowed:
            return web.json_response({"error": f"{peer} is not a trusted host"}, status=401)
        return await handler(request)

    return guard


def _keep_state(
    store: object, state_file: str | None
) -> tuple[asyncio.Event, asyncio.Task[None]] | None:
    """With the 'local' store and a state file: read it back, then keep saving it (see
    :mod:`kumocore.tsa.state_file`). A Redis store keeps its own state."""
    from pathlib import Path

    from kumocore.tsa.state_file import keep_saving, load_state
    from kumocore.tsa.store import LocalActionStore

    if not state_file or not isinstance(store, LocalActionStore):
        return None
    path = Path(state_file)
    log.info("automation state restored", path=str(path), actions=load_state(path, store))
    done = asyncio.Event()
    return done, asyncio.get_running_loop().create_task(keep_saving(path, store, done))


async def _text(body: str) -> web.StreamResponse:
    return web.Response(text=body)


async def serve(
    policy: str, listen: str, trusted: Sequence[str],
    stop: asyncio.Event | None = None, state_file: str | None = None,
) -> None:  # fmt: skip
    from kumocore.node.runtime import Runtime
    from kumocore.throttle import LocalThrottleStore
    from kumocore.tsa.http import add_tsa_routes

    runtime = Runtime()
    await runtime.load(policy)
    engine = runtime.tsa
    if engine is None or not engine.match_locally:
        raise ConfigError(
            f"{policy}: no automation to serve: call shaping:setup_with_automation with "
            "subscribe = { 'redis-throttles' } or { 'local' }")
    stores = runtime.hooks.throttle_stores()
    throttles = stores[0] if stores else LocalThrottleStore()
    engine.start(throttles)
    saving = _keep_state(engine.store, state_file)
    app = web.Application(middlewares=[_trust(trusted)], client_max_size=16 * 1024 * 1024)
    add_tsa_routes(app, runtime)
    # KumoMTA's daemon's health check, which load balancers and monitors poll.
    app.router.add_get("/tsa/status", lambda _: _text("TSA Daemon OK"))
    runner = web.AppRunner(app)
    await runner.setup()
    host, _, port = listen.rpartition(":")
    site = web.TCPSite(runner, host.strip("[]") or "127.0.0.1", int(port))
    await site.start()
    log.info("kumocore tsa ready", listen=listen, store=engine.store.label, policy=policy)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await engine.stop()
        if saving is not None:
            saving[0].set()
            await saving[1]
        await runner.cleanup()
        await runtime.hooks.shutdown()
        await throttles.close()
