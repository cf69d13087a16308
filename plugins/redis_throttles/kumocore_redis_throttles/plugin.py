"""The pluggy side: ``kumo.configure_redis_throttles`` and the store it provides."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kumocore import ConfigError, hookimpl, policy_function
from kumocore.throttle import ThrottleStore
from kumocore_redis_throttles.options import RedisOptions
from kumocore_redis_throttles.store import RedisThrottleStore


class RedisThrottlesPlugin:
    """Shares throttles and connection limits between kumocore nodes through Redis.

    Instantiated once per plugin manager, so the configured store belongs to that manager
    only. Until the policy calls ``kumo.configure_redis_throttles``, it provides no store
    and kumocore keeps using the in-process one.
    """

    def __init__(self, *, probe_interval: float = 1.0) -> None:
        """``probe_interval``: seconds between reconnection attempts during an outage."""
        self.probe_interval = probe_interval
        self.store: RedisThrottleStore | None = None

    async def configure(self, **options: Any) -> RedisThrottleStore:
        """What ``kumo.configure_redis_throttles { ... }`` does: validate, connect, PING."""
        if self.store is not None:
            # KumoMTA refuses this too: two calls would leave nodes split across two Redis.
            raise ConfigError(
                "kumo.configure_redis_throttles: redis is already configured "
                f"for throttles ({self.store.label})"
            )
        parsed = RedisOptions.from_table(options)
        self.store = await RedisThrottleStore.connect(parsed, probe_interval=self.probe_interval)
        return self.store

    @hookimpl
    def kumo_register_policy_functions(self) -> dict[str, Callable[..., Any]]:
        @policy_function(table=True)
        async def configure_redis_throttles(**options: Any) -> None:
            await self.configure(**options)

        return {"configure_redis_throttles": configure_redis_throttles}

    @hookimpl
    def kumo_register_throttle_stores(self) -> list[ThrottleStore]:
        return [self.store] if self.store is not None else []

    @hookimpl
    async def kumo_shutdown(self) -> None:
        store, self.store = self.store, None
        if store is not None:
            await store.close()
