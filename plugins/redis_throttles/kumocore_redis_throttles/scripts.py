"""The Lua scripts run inside Redis, and how results come back as Python values.

Every decision is one script so it is atomic: two nodes calling at the same instant can
never both see the last unit of a budget. Time is always Redis's own ``TIME``, never the
node's clock, so nodes with skewed clocks still agree on one timeline.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

from kumocore.throttle import ThrottleResult

# GCRA, after Losant's redis-gcra as adapted by KumoMTA, with two deliberate changes:
#  * `now` keeps TIME's microseconds. KumoMTA reads whole seconds only, which makes any
#    throttle faster than about one per second lumpy (a whole second of budget appears at
#    once); microseconds let "10/s" admit one every 100 ms as the local store does.
#  * admission uses redis-cell's rule with KumoMTA's local clamp (capacity =
#    min(max_burst, limit - 1) + 1, computed by the caller), so a spec behaves the same in
#    Redis, with redis-cell, and in the local store.
# All times are microseconds. Absolute times (~1.7e15 us) are only subtracted from each
# other, which doubles do exactly; the arithmetic after that works on small offsets. The
# TAT is stored with string.format because tostring() keeps only 14 significant digits,
# and floats go back as strings because Redis truncates Lua numbers in replies to integers.
GCRA_LUA = """
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local increment = interval * tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ahead = tonumber(redis.call('GET', KEYS[1]) or now) - now
if ahead < 0 then ahead = 0 end
local ttl = ahead + increment
local throttled = 0
local retry_after = 0
if ttl > tolerance then
  throttled = 1
  if increment <= tolerance then retry_after = ttl - tolerance else retry_after = -1 end
  ttl = ahead
elseif increment > 0 then
  redis.call('SET', KEYS[1], string.format('%.3f', now + ttl), 'PX', math.ceil(ttl / 1000))
end
local spare = tolerance - ttl
local remaining = 0
if spare > 0 then remaining = math.floor(spare / interval + 1e-9) end
return {throttled, remaining, string.format('%.3f', ttl), string.format('%.3f', retry_after)}
"""

# A lease set is a sorted set of token -> expiry (ms of Redis time). Expired members are
# pruned before counting, so a crashed node's leases stop counting once they lapse; the
# whole key also expires after its longest lease so abandoned queues leave nothing behind.
ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local duration = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + duration, ARGV[1])
if redis.call('PTTL', KEYS[1]) < duration then redis.call('PEXPIRE', KEYS[1], duration) end
return 1
"""

# Renewal refuses a lapsed lease (even one not yet pruned): another node may already have
# been granted its unit, and resurrecting it would exceed the limit.
RENEW_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local duration = tonumber(ARGV[2])
local expires = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or 0)
if expires <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', now + duration, ARGV[1])
if redis.call('PTTL', KEYS[1]) < duration then redis.call('PEXPIRE', KEYS[1], duration) end
return 1
"""


class Script:
    """A Lua script run with EVALSHA, loaded into Redis's script cache on NOSCRIPT.

    EVALSHA sends 40 bytes instead of the script on every call; the cache is empty after
    a Redis restart or ``SCRIPT FLUSH``, which is what the NOSCRIPT reload handles.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


GCRA = Script(GCRA_LUA)
ACQUIRE = Script(ACQUIRE_LUA)
RENEW = Script(RENEW_LUA)
ALL_SCRIPTS = (GCRA, ACQUIRE, RENEW)


def gcra_result(reply: Sequence[Any]) -> ThrottleResult:
    """Decode the GCRA script's ``{throttled, remaining, ttl_us, retry_us}``."""
    retry_us = float(reply[3])
    return ThrottleResult(
        throttled=int(reply[0]) == 1,
        remaining=int(reply[1]),
        reset_after=float(reply[2]) / 1e6,
        retry_after=math.inf if retry_us < 0 else retry_us / 1e6,
    )


def cell_result(reply: Sequence[Any]) -> ThrottleResult:
    """Decode ``CL.THROTTLE``'s ``[limited, limit, remaining, retry_after, reset_after]``.

    redis-cell answers in whole seconds, with retry_after -1 when the call was admitted
    and also when it can never be (more than the whole burst asked for).
    """
    throttled = int(reply[0]) == 1
    retry = int(reply[3])
    retry_after = (math.inf if retry < 0 else float(retry)) if throttled else 0.0
    reset_after = float(max(0, int(reply[4])))
    return ThrottleResult(throttled, max(0, int(reply[2])), reset_after, retry_after)
