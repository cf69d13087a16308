"""kumocore-redis-throttles: KumoMTA's ``kumo.configure_redis_throttles`` for kumocore.

Several kumocore nodes pointed at one Redis share their rate throttles (GCRA, as one
atomic Lua script, or ``CL.THROTTLE`` when the redis-cell module is loaded) and their
connection limits (lease sets that lapse when a node dies). See docs/redis-throttles.md.

Owns the Redis-backed throttle store and the automation state kept in the same Redis. It
does not own where limits are applied (kumocore's egress paths) or the GCRA spec syntax
(:mod:`kumocore.throttle`).
"""

from __future__ import annotations

from kumocore_redis_throttles.options import RedisOptions
from kumocore_redis_throttles.plugin import RedisThrottlesPlugin
from kumocore_redis_throttles.store import RedisThrottleStore

__all__ = ["RedisOptions", "RedisThrottleStore", "RedisThrottlesPlugin"]
