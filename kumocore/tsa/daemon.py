"""``kumocore tsa serve``: automation as a service of its own (KumoMTA's tsa-daemon role).

It loads one of two kinds of policy:

* KumoMTA's daemon policy (``require 'tsa'``; ``tsa_load_shaping_data`` answers the
  shaping data; ``tsa_init`` calls ``tsa.start_http_listener`` and
  ``tsa.configure_tsa_db_path``): see :mod:`kumocore.tsa.daemon_policy`;
* kumocore's own: ``shaping:setup_with_automation`` with ``subscribe = {'redis-throttles'}``
  or ``{'local'}`` (``init`` may call ``kumo.configure_redis_throttles``), listening on
  ``--listen`` for ``--trusted-host`` peers (default: loopback).

Either way it serves only the automation endpoints: KumoMTA nodes publish to
``/publish_log_v1`` and subscribe to it; kumocore nodes subscribe with
``subscribe = {'http://host:port'}`` or share its Redis. No spool, queues or listeners of
the policy are started. Each listener serves only its trusted hosts.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from kumocore.config.http_listener import HttpListenerConfig
from kumocore.errors import ConfigError
from kumocore.node.gc_pause import PauseBound
from kumocore.node.gctune import freeze_survivors, tune_for_server
from kumocore.tsa.daemon_policy import (
    INIT_EVENT,
    SHAPING_EVENT,
    ShapingData,
    TsaModule,
    call_event,
    has_handler,
)

if TYPE_CHECKING:
    from kumocore.http.service import ServiceListener
    from kumocore.node.runtime import Runtime
    from kumocore.tsa.engine import TsaEngine

log = structlog.get_logger("kumocore.tsa")

DEFAULT_LISTEN = "127.0.0.1:8008"
DEFAULT_TRUSTED = ("127.0.0.1", "::1")
DEFAULT_STATE_FILE = "var/tsa-state.json"
#: Body limit of the ``--listen`` listener (a batch of records per POST); a policy's
#: listener has KumoMTA's ``request_body_limit`` (2 MiB unless set).
CLI_BODY_LIMIT = 16 * 1024 * 1024

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


def _listeners(
    module: TsaModule, listen: str | None, trusted: Sequence[str] | None
) -> list[HttpListenerConfig]:
    """The policy's ``tsa.start_http_listener`` listeners, else the command line's."""
    if module.listeners:
        if listen is not None or trusted is not None:
            raise ConfigError(
                "the policy starts its listeners (tsa.start_http_listener): "
                "--listen and --trusted-host would be ignored; drop them"
            )
        return module.listeners
    options = {"listen": listen or DEFAULT_LISTEN,
               "trusted_hosts": list(trusted or DEFAULT_TRUSTED),
               "request_body_limit": CLI_BODY_LIMIT}  # fmt: skip
    return [HttpListenerConfig.from_options(options, function="kumocore tsa serve")]


def _state_file(module: TsaModule, state_file: str | None) -> str | None:
    """``tsa.configure_tsa_db_path``'s, else ``--state-file``'s; None: memory only."""
    from_policy = module.state_file()
    if from_policy is None:
        chosen = DEFAULT_STATE_FILE if state_file is None else state_file
        return chosen or None
    if state_file is not None:
        raise ConfigError(
            "the policy says where the state is kept (tsa.configure_tsa_db_path): drop --state-file"
        )
    return from_policy or None


async def _engine(runtime: Runtime, policy: str) -> tuple[TsaEngine, ShapingData | None]:
    """The engine: from ``tsa_load_shaping_data`` (KumoMTA's daemon policy) or from the
    policy's ``setup_with_automation``."""
    shaping = None
    if has_handler(runtime, SHAPING_EVENT):
        if runtime.tsa is not None:
            raise ConfigError(
                f"{policy}: the policy both handles {SHAPING_EVENT} and calls "
                "setup_with_automation; keep one"
            )
        shaping = ShapingData(runtime)
        await shaping.load()
    engine = runtime.tsa
    if engine is None or not engine.match_locally:
        raise ConfigError(
            f"{policy}: no automation to serve: register a {SHAPING_EVENT} handler, or call "
            "shaping:setup_with_automation with subscribe = { 'redis-throttles' } or "
            "{ 'local' }"
        )
    return engine, shaping


async def _status(_: web.Request) -> web.StreamResponse:
    # KumoMTA's daemon's health check, which load balancers and monitors poll.
    return web.Response(text="TSA Daemon OK")


async def _start(runtime: Runtime, config: HttpListenerConfig) -> ServiceListener:
    from kumocore.http.service import start_service_listener
    from kumocore.tsa.http import add_tsa_routes
    from kumocore.tsa.openapi import tsa_openapi_paths

    def add_routes(app: web.Application) -> None:
        add_tsa_routes(app, runtime)
        app.router.add_get("/tsa/status", _status)

    status = {"get": {"tags": ["status"], "summary": "Health check",
                      "responses": {"200": {"description": "TSA Daemon OK"}}}}
    paths = {**tsa_openapi_paths(), "/tsa/status": status}
    return await start_service_listener(config, add_routes, function="kumocore tsa serve",
                                        title="kumocore tsa", paths=paths)  # fmt: skip


async def serve(
    policy: str, *, listen: str | None = None, trusted: Sequence[str] | None = None,
    state_file: str | None = None, stop: asyncio.Event | None = None, tune_gc: bool = False,
) -> None:  # fmt: skip
    """Run until ``stop`` (or SIGTERM/SIGINT). ``None`` options were not given: the
    policy's ``tsa_init`` or the defaults decide. ``tune_gc``: the process is this
    service's: collect garbage as ``kumocore serve`` does (:mod:`kumocore.node.gctune`):
    tens of thousands of actions made each full collection of a plain process a
    20-110 ms stop of every request."""
    from kumocore.node.runtime import Runtime

    if tune_gc:
        tune_for_server()
    module = TsaModule()
    runtime = Runtime(extra_plugins=(("tsa", module),))
    try:
        await runtime.load(policy)
        # KumoMTA's order: the shaping data first (a mistake in it stops the start),
        # then tsa_init, then the saved state.
        engine, shaping = await _engine(runtime, policy)
        await call_event(runtime, INIT_EVENT)
        module.started = True
        listeners = _listeners(module, listen, trusted)
        chosen = _state_file(module, state_file)
        signals = stop is None  # a caller passing `stop` (a test) decides when it ends
        await _run(runtime, engine, shaping, listeners, chosen, stop or asyncio.Event(), signals,
                   tune_gc)
    finally:
        await runtime.hooks.shutdown()


async def validate(policy: str) -> str:
    """Load ``policy`` as :func:`serve` would — shaping data, ``tsa_init``, listeners and
    state — and stop before listening; a one-line summary, or the error :func:`serve`
    would stop with (:class:`ConfigError`, :class:`~kumocore.errors.PolicyError`)."""
    from kumocore.node.runtime import Runtime

    module = TsaModule()
    runtime = Runtime(extra_plugins=(("tsa", module),))
    try:
        await runtime.load(policy)
        engine, shaping = await _engine(runtime, policy)
        await call_event(runtime, INIT_EVENT)
        listeners = _listeners(module, None, None)
        chosen = _state_file(module, None)
    finally:
        await runtime.hooks.shutdown()
    source = "tsa_load_shaping_data" if shaping is not None else "setup_with_automation"
    return (f"tsa policy {policy} OK: rules from {source}, store {engine.store.label}, "
            f"listening on {', '.join(c.listen for c in listeners)}, "
            f"state {chosen or 'in memory only'}")


async def _run(
    runtime: Runtime, engine: TsaEngine, shaping: ShapingData | None,
    listeners: list[HttpListenerConfig], state_file: str | None, stop: asyncio.Event,
    signals: bool, tune_gc: bool,
) -> None:  # fmt: skip
    from kumocore.throttle import LocalThrottleStore

    stores = runtime.hooks.throttle_stores()
    throttles = stores[0] if stores else LocalThrottleStore()
    engine.start(throttles)
    saving = _keep_state(engine.store, state_file)
    reloading = None
    if shaping is not None:
        reloading = asyncio.get_running_loop().create_task(shaping.keep_loading(stop))
    started: list[ServiceListener] = []
    collector: PauseBound | None = None
    try:
        for config in listeners:
            started.append(await _start(runtime, config))
        if tune_gc:
            collector = freeze_survivors()  # the policy, the rules and the saved state
        log.info("kumocore tsa ready", listen=[c.listen for c in listeners],
                 store=engine.store.label, policy=runtime.policy_path)  # fmt: skip
        for sig in (signal.SIGTERM, signal.SIGINT) if signals else ():
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        stop.set()
        if reloading is not None:
            await reloading
        await engine.stop()
        if saving is not None:
            saving[0].set()
            await saving[1]
        for listener in started:
            await listener.close()
        await throttles.close()
        if collector is not None:
            collector.close()
