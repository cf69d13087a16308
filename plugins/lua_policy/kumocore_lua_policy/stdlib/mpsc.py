"""KumoMTA's ``kumo.mpsc.define(name, limit)``: a named queue between policy tasks, many
senders, one receiver.

Queues live as long as the process and are shared by every policy load in it (a reload
gets the same queue back; the first ``define`` of a name fixes its limit). kumocore runs
one process per worker, so a queue is per worker. With a limit the queue holds at most
that many items: ``send`` waits for room, ``send_timeout`` waits that long then fails,
``try_send`` answers false. Without one it is unbounded, as in KumoMTA.

Items are data (tables, strings, numbers, kumo objects), stored as converted at ``send``:
functions and coroutines are refused. Receiving is for one task at a time: a second
receiver while one waits is an error, as in KumoMTA.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from kumocore import ConfigError, lua_type_name
from kumocore_lua_policy.stdlib.arguments import number_arg

_BUSY = (
    "the receiving side of this queue is in use by another task "
    "(an mpsc queue has a single consumer)"
)


def _check_value(value: Any, depth: int = 0) -> None:
    """Refuse what KumoMTA cannot memoize: functions and coroutines (at any depth)."""
    if depth > 100:
        raise ConfigError("mpsc: value nested too deeply (a cycle?)")
    if isinstance(value, dict):
        for item in value.values():
            _check_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_value(item, depth + 1)
    elif callable(value) or type(value).__name__.startswith("_Lua"):
        kind = "function" if callable(value) else "coroutine"
        raise ConfigError(
            f"mpsc: cannot send a {kind}: only data "
            "(tables, strings, numbers, booleans, kumo objects) can be queued"
        )


class MpscQueue:
    """One named queue; methods called with ``queue:method(...)``."""

    lua_methods = True

    def __init__(self, name: str, limit: int | None) -> None:
        self.name = name
        self._limit = limit
        self._items: deque[Any] = deque()
        self._closed = False
        self._changed = asyncio.Condition()
        self._receiving = False

    # ------------------------------------------------------------------ senders
    async def send(self, value: Any) -> None:
        """Queue ``value``, waiting for room in a bounded queue."""
        _check_value(value)
        async with self._changed:
            await self._changed.wait_for(lambda: self._closed or self._has_room())
            self._push(value)

    async def send_timeout(self, value: Any, timeout_seconds: Any) -> None:
        """Queue ``value``, waiting at most ``timeout_seconds`` for room."""
        timeout = float(number_arg("queue:send_timeout", "TIMEOUT_SECONDS", timeout_seconds))
        _check_value(value)
        async with self._changed:
            try:
                async with asyncio.timeout(max(0.0, timeout)):
                    await self._changed.wait_for(lambda: self._closed or self._has_room())
            except TimeoutError:
                raise ConfigError(
                    f"mpsc queue {self.name!r} is full: no room within {timeout} seconds"
                ) from None
            self._push(value)

    async def try_send(self, value: Any) -> bool:
        """Queue ``value`` if there is room now; false when full or closed."""
        _check_value(value)
        if self._closed or not self._has_room():
            return False
        async with self._changed:
            self._push(value)
        return True

    # ------------------------------------------------------------------ the receiver
    async def recv(self) -> Any:
        """The next item, waiting for one; nil once the queue is closed and drained."""
        items = await self._receive(1)
        return items[0] if items else None

    async def try_recv(self) -> Any:
        """The next item if one is queued now, else nil."""
        self._claim()
        try:
            async with self._changed:
                return self._pop(1)[0] if self._items else None
        finally:
            self._receiving = False

    async def recv_many(self, limit: Any) -> list[Any] | None:
        """Up to ``limit`` items, waiting for at least one; nil once closed and drained."""
        count = int(number_arg("queue:recv_many", "LIMIT", limit))
        if count < 1:
            raise ConfigError(f"queue:recv_many: LIMIT must be at least 1, got {limit}")
        items = await self._receive(count)
        return items if items else None

    def len(self) -> int:
        self._claim()
        self._receiving = False
        return len(self._items)

    def is_empty(self) -> bool:
        return self.len() == 0

    # ------------------------------------------------------------------ state
    async def close(self) -> None:
        """Refuse further sends; queued items can still be received."""
        async with self._changed:
            self._closed = True
            self._changed.notify_all()

    def is_closed(self) -> bool:
        return self._closed

    def _has_room(self) -> bool:
        return self._limit is None or len(self._items) < self._limit

    def _push(self, value: Any) -> None:
        if self._closed:
            raise ConfigError(f"cannot send to closed channel (mpsc queue {self.name!r})")
        self._items.append(value)
        self._changed.notify_all()

    def _pop(self, count: int) -> list[Any]:
        taken = [self._items.popleft() for _ in range(min(count, len(self._items)))]
        self._changed.notify_all()
        return taken

    def _claim(self) -> None:
        if self._receiving:
            raise ConfigError(_BUSY)
        self._receiving = True

    async def _receive(self, count: int) -> list[Any]:
        self._claim()
        try:
            async with self._changed:
                await self._changed.wait_for(lambda: self._closed or bool(self._items))
                return self._pop(count)
        finally:
            self._receiving = False


class MpscRegistry:
    """The process's named queues."""

    def __init__(self) -> None:
        self._queues: dict[str, MpscQueue] = {}

    def define(self, name: Any, limit: Any = None) -> MpscQueue:
        """``kumo.mpsc.define(NAME, OPTIONAL_LIMIT)``: this process's queue of that name,
        created on first use (bounded to ``OPTIONAL_LIMIT`` items when given). Methods:
        ``send``, ``send_timeout``, ``try_send``, ``recv``, ``try_recv``, ``recv_many``,
        ``len``, ``is_empty``, ``close``, ``is_closed``."""
        if not isinstance(name, str):
            raise ConfigError(f"kumo.mpsc.define: NAME must be a string, got {lua_type_name(name)}")
        if limit is not None:
            limit = int(number_arg("kumo.mpsc.define", "OPTIONAL_LIMIT", limit))
            if limit < 1:
                raise ConfigError(
                    f"kumo.mpsc.define: OPTIONAL_LIMIT must be a non-zero "
                    f"positive integer, got {limit}"
                )
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = MpscQueue(name, limit)
        return queue

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {"mpsc.define": self.define}
