"""A connection waiting out its path's backoff before a reconnect waits by design: the
progress watchdog counts from the end of that wait, not from when it began."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from kumocore.queue.dispatchers import Dispatcher, Dispatchers
from kumocore.queue.watchdog import Watchdog


@dataclass
class _Path:
    dispatchers: Dispatchers
    config: Any = field(default_factory=lambda: SimpleNamespace(
        dispatcher_progress_watchdog_timeout=1.0, idle_timeout=1.0))
    key: Any = field(default_factory=lambda: SimpleNamespace(name="q", protocol="smtp_client",
                                                                protocol_kind="smtp_client"))
    shared: Any = field(default_factory=lambda: SimpleNamespace(watchdog_aborts=Counter()))


async def _idle_for(seconds: float, *, backing_off_until: float | None) -> Dispatcher:
    dispatchers = Dispatchers("q")
    task = asyncio.ensure_future(asyncio.sleep(3600))
    dispatcher = Dispatcher(task)
    dispatchers._open[dispatcher.session_id] = dispatcher
    dispatcher.enter_phase("Idle")
    dispatcher.active_at = time.monotonic() - seconds  # idle that long already
    if backing_off_until is not None:
        dispatcher.waiting_until = backing_off_until
    path = _Path(dispatchers)
    Watchdog(path)._check()  # type: ignore[arg-type]
    task.cancel()
    return dispatcher


async def test_an_idle_connection_past_threshold_and_idle_timeout_is_aborted() -> None:
    assert (await _idle_for(5.0, backing_off_until=None)).aborted


async def test_a_connection_in_its_paths_backoff_is_not_aborted() -> None:
    dispatcher = await _idle_for(5.0, backing_off_until=time.monotonic() + 300)
    assert not dispatcher.aborted
