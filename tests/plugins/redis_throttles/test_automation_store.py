"""Automation's match counting in a real Redis: the window slides, and the sorted set of
one rule and path is bounded as the local store's series is."""

from __future__ import annotations

from typing import Any

import pytest
from kumocore_redis_throttles import automation
from kumocore_redis_throttles.automation import RedisActionStore


async def test_matches_older_than_the_window_stop_counting(raw: Any) -> None:
    store = RedisActionStore(raw, "test")
    assert await store.count_match("r:s", 10, 100.0) == 1
    assert await store.count_match("r:s", 10, 105.0) == 2
    assert await store.count_match("r:s", 10, 110.5) == 2  # 100.0 left the window
    assert await store.count_match("r:s", 10, 125.0) == 1


async def test_the_matches_of_one_rule_and_path_are_bounded(
    raw: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(automation, "MAX_MATCHES_PER_SCOPE", 50)
    store = RedisActionStore(raw, "test")
    for i in range(200):
        count = await store.count_match("r:s", 3600, 1000.0 + i)
    assert count == 50
    assert await raw.zcard(automation.MATCH_PREFIX + "r:s") == 50
    newest = await raw.zrange(automation.MATCH_PREFIX + "r:s", -1, -1, withscores=True)
    assert newest[0][1] == 1199.0  # the oldest left, not the newest
