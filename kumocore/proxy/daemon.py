"""``kumocore proxy serve``: KumoMTA's KumoProxy (the ``proxy-server`` executable).

The policy is evaluated (``require 'proxy'`` is given to it only here), ``proxy_init`` is
called once and starts the listeners it asked for; ``proxy_server_auth_rfc1929`` is called
for each client that authenticates. No spool, queue or SMTP listener of the policy is
started. :func:`validate` does the same and stops before listening.
"""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CollectorRegistry

from kumocore.errors import ConfigError
from kumocore.proxy.http import start_http
from kumocore.proxy.listener import RESERVED_FDS, ProxyListener, descriptor_cap
from kumocore.proxy.metrics import ProxyCollector
from kumocore.proxy.module import INIT_EVENT, ProxyModule, authenticator
from kumocore.tsa.daemon_policy import call_event

if TYPE_CHECKING:
    from kumocore.http.service import ServiceListener
    from kumocore.node.runtime import Runtime

log = structlog.get_logger("kumocore.proxy")


class ProxyDaemon:
    """The loaded policy and, once :meth:`start`-ed, its listeners."""

    def __init__(self, runtime: Runtime, module: ProxyModule) -> None:
        self.runtime = runtime
        self.module = module
        self.listeners: list[ProxyListener] = []
        self.http: list[ServiceListener] = []
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ProxyCollector(lambda: [p.metrics for p in self.listeners]))

    @classmethod
    async def load(cls, policy: str) -> ProxyDaemon:
        """Evaluate ``policy`` and run its ``proxy_init``; the caller must :meth:`close`."""
        from kumocore.node.runtime import Runtime

        module = ProxyModule()
        runtime = Runtime(extra_plugins=(("proxy", module),))
        daemon = cls(runtime, module)
        try:
            await runtime.load(policy)
            found, _ = await call_event(runtime, INIT_EVENT)
            if not module.proxy_listeners:
                why = "its proxy_init" if found else f"it registers no {INIT_EVENT} handler and"
                raise ConfigError(f"{policy}: nothing to serve: {why} starts no "
                                  "proxy.start_proxy_listener")  # fmt: skip
        except BaseException:
            await daemon.close()
            raise
        module.started = True
        return daemon

    async def start(self) -> None:
        from kumocore.http.connections import connection_cap

        authenticate = authenticator(self.runtime)
        http_fds = sum(connection_cap(c.max_connections) for c in self.module.http_listeners)
        fd_cap = descriptor_cap(len(self.module.proxy_listeners), RESERVED_FDS + http_fds)
        for config in self.module.proxy_listeners:
            listener = ProxyListener(config, authenticate, fd_cap)
            await listener.start()
            self.listeners.append(listener)
        for http in self.module.http_listeners:
            self.http.append(await start_http(http, self.registry))
        log.info("kumocore proxy ready", policy=self.runtime.policy_path,
                 listen=[p.metrics.listener for p in self.listeners],
                 http=[c.listen for c in self.module.http_listeners])  # fmt: skip

    async def close(self) -> None:
        for listener in self.listeners:
            await listener.close()
        for http in self.http:
            await http.close()
        await self.runtime.hooks.shutdown()

    def summary(self) -> str:
        proxies = ", ".join(c.listen for c in self.module.proxy_listeners)
        http = ", ".join(c.listen for c in self.module.http_listeners) or "none"
        return f"proxy listeners on {proxies}; HTTP listeners: {http}"


def raise_open_file_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard one, as KumoProxy does at start (each
    client holds two descriptors); the soft limit in force afterwards."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # e.g. an unlimited hard limit
            log.warning("open-file limit not raised", soft=soft, hard=hard, error=str(exc))
    return soft


async def serve(policy: str, *, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` (or SIGTERM/SIGINT when no ``stop`` is given)."""
    raise_open_file_limit()
    daemon = await ProxyDaemon.load(policy)
    try:
        await daemon.start()
        done = stop or asyncio.Event()
        if stop is None:
            for sig in (signal.SIGTERM, signal.SIGINT):
                asyncio.get_running_loop().add_signal_handler(sig, done.set)
        await done.wait()
    finally:
        await daemon.close()


async def validate(policy: str) -> str:
    """Load ``policy`` as :func:`serve` does and stop before listening: a one-line
    summary, or the error :func:`serve` would stop with."""
    daemon = await ProxyDaemon.load(policy)
    try:
        return f"proxy policy {policy} OK: {daemon.summary()}"
    finally:
        await daemon.close()
