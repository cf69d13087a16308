"""``kumo.make_throttle(name, spec)``: a named rate throttle a policy checks itself.

It uses the same store as the server's own throttles: the shared one (Redis, from
``kumo.configure_redis_throttles``) when configured, the in-process one otherwise or when
the spec has KumoMTA's ``local:`` prefix. Two throttles with the same name and spec share
one budget, across the fleet when the store is shared.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kumocore.errors import ConfigError
from kumocore.policy.policyfn import policy_function, string_argument
from kumocore.throttle.local import LocalThrottleStore
from kumocore.throttle.spec import ThrottleSpec
from kumocore.throttle.store import ThrottleStore, rate_key

if TYPE_CHECKING:
    from kumocore.policy.policy_host import PolicyHost


class PolicyThrottle:
    """What ``kumo.make_throttle`` returns: ``throttle:throttle()``,
    ``throttle:sleep_if_throttled()``, ``throttle:delay_message_if_throttled(msg)``."""

    __kumo_methods__ = True  # Lua calls its methods: throttle:throttle()

    def __init__(self, name: str, spec: ThrottleSpec, store: Callable[[], ThrottleStore]):
        self.name = name
        self.spec = spec
        self._store = store

    def __repr__(self) -> str:
        return f"<kumo throttle {self.name} {self.spec}>"

    async def throttle(self) -> dict[str, Any]:
        """Count one operation if allowed; KumoMTA's result table (durations in seconds)."""
        result = await self._store().throttle(rate_key(self.name, self.spec), self.spec)
        return {
            "throttled": result.throttled,
            "limit": self.spec.limit,
            "remaining": result.remaining,
            "reset_after": result.reset_after,
            "retry_after": result.retry_after if result.throttled else None,
        }

    async def sleep_if_throttled(self) -> bool:
        """Wait until the operation is allowed (counting it); True if it had to wait."""
        waited = False
        while True:
            result = await self._store().throttle(rate_key(self.name, self.spec), self.spec)
            if not result.throttled:
                return waited
            if math.isinf(result.retry_after):
                raise ConfigError(f"throttle {self.name}: {self.spec} can never admit one")
            waited = True
            await asyncio.sleep(result.retry_after)

    async def delay_message_if_throttled(self, message: Any) -> bool:
        """Push ``message``'s due time back by the wait; True if it was delayed."""
        import time

        result = await self._store().throttle(rate_key(self.name, self.spec), self.spec)
        if not result.throttled:
            return False
        message.due = time.time() + result.retry_after
        return True


def make_throttle_functions(runtime: PolicyHost) -> dict[str, Callable[..., Any]]:
    """The ``make_throttle`` entry of ``kumo_register_policy_functions``."""
    local = LocalThrottleStore()

    @policy_function(table=False)
    def make_throttle(name: Any, spec: Any) -> PolicyThrottle:
        """``kumo.make_throttle('reception-rate', '100/minute')``."""
        string_argument("kumo.make_throttle", "name", name, empty=False)
        parsed = ThrottleSpec.parse(spec)

        def store() -> ThrottleStore:
            shared = runtime.services.throttles if runtime.services is not None else None
            return local if parsed.force_local or shared is None else shared

        return PolicyThrottle(name, parsed, store)

    return {"make_throttle": make_throttle}
