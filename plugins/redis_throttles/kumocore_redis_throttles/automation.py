"""Traffic shaping automation state in the throttle Redis, shared by every node.

* matches: one sorted set per (rule, egress path), ``kumocore:tsa:m:<scope>``, scored by
  time, trimmed to the rule's window on every match (and to the newest
  ``MAX_MATCHES_PER_SCOPE``, as the local store), expiring with it;
* actions: one hash, ``kumocore:tsa:actions``, action id → JSON (with its expiry). Any node
  drops expired entries when it reads them; a cancel deletes the entry for every node.

Redis keeps the state; kumocore adds no consensus of its own: the last write of an action
wins, which is what KumoMTA's daemon does with a rule that fires again (it extends it).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from kumocore import redis_service_label
from kumocore.tsa.store import MAX_MATCHES_PER_SCOPE, ActiveAction
from kumocore_redis_throttles.timing import QUERY, timed

ACTIONS_KEY = "kumocore:tsa:actions"
MATCH_PREFIX = "kumocore:tsa:m:"


class RedisActionStore:
    """A :class:`kumocore.tsa.store.ActionStore` on a ``redis.asyncio`` client; each
    command (a pipeline counts as one) is timed under ``service``."""

    def __init__(self, client: Any, label: str, service: str | None = None) -> None:
        self._client = client
        self.label = f"redis {label}"
        self.service = service or redis_service_label((label,))

    async def count_match(self, scope: str, window: float, now: float) -> int:
        key = MATCH_PREFIX + scope
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {f"{now:.6f}:{uuid.uuid4().hex[:8]}": now})
            pipe.zremrangebyscore(key, "-inf", f"({now - window}")
            pipe.zremrangebyrank(key, 0, -MAX_MATCHES_PER_SCOPE - 1)
            pipe.zcard(key)
            pipe.pexpire(key, max(1, int(window * 1000)))
            replies = await timed(self.service, QUERY, pipe.execute())
        return int(replies[3])

    async def put(self, action: ActiveAction) -> ActiveAction:
        old = await timed(self.service, QUERY, self._client.hget(ACTIONS_KEY, action.id))
        if old is not None:
            previous = ActiveAction.from_json(orjson.loads(old))
            if previous.active:
                action.since = previous.since
        stored = orjson.dumps(_stored(action))
        await timed(self.service, QUERY, self._client.hset(ACTIONS_KEY, action.id, stored))
        return action

    async def active(self) -> dict[str, ActiveAction]:
        raw = await timed(self.service, QUERY, self._client.hgetall(ACTIONS_KEY))
        now = time.time()
        result: dict[str, ActiveAction] = {}
        expired = []
        for key, value in raw.items():
            action = ActiveAction.from_json(orjson.loads(value))
            if action.expires <= now:
                expired.append(key)
            else:
                result[action.id] = action
        if expired:
            await timed(self.service, QUERY, self._client.hdel(ACTIONS_KEY, *expired))
        return result

    async def cancel(self, action_id: str) -> bool:
        removed = await timed(self.service, QUERY, self._client.hdel(ACTIONS_KEY, action_id))
        return int(removed) > 0


def _stored(action: ActiveAction) -> dict[str, Any]:
    data = action.to_json()
    for key in ("since_rfc3339", "expires_rfc3339", "remaining_seconds"):
        data.pop(key, None)
    return data
