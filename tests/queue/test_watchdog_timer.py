"""The progress watchdog's one timer per path (kumocore.queue.watchdog.Watchdog): many
connections share it, connections that keep making progress are left alone however long
they run, the one that stops is aborted once, and the timer stops when none is left."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace

from kumocore.config import EgressPathConfig
from kumocore.queue.dispatchers import Dispatcher, Dispatchers
from kumocore.queue.egress import PathKey
from kumocore.queue.watchdog import Watchdog


def _path(threshold: str) -> SimpleNamespace:
    key = PathKey("unspecified", "mx.test")
    config = EgressPathConfig.from_options(
        {"dispatcher_progress_watchdog_timeout": threshold, "idle_timeout": "10s"}
    )
    return SimpleNamespace(
        key=key,
        config=config,
        dispatchers=Dispatchers(key.name),
        shared=SimpleNamespace(watchdog_aborts=Counter()),
    )


async def test_one_timer_watches_every_connection_and_aborts_only_the_stuck_one() -> None:
    path = _path("200ms")
    watchdog = Watchdog(path)  # type: ignore[arg-type]
    stop = asyncio.Event()
    started: list[Dispatcher] = []

    async def connection(stuck: bool) -> None:
        dispatcher = path.dispatchers.enter()
        dispatcher.enter_phase("DeliveringMessage")
        started.append(dispatcher)
        watchdog.watch()
        try:
            while not stop.is_set():
                await asyncio.sleep(0.05)
                if not stuck:
                    dispatcher.touch()  # a reply read, a command sent
        finally:
            path.dispatchers.leave(dispatcher)

    tasks = [asyncio.ensure_future(connection(stuck=i == 0)) for i in range(50)]
    await asyncio.sleep(0.01)
    timer = watchdog._timer
    assert timer is not None and len(started) == 50
    assert all(watchdog._timer is timer for _ in started)  # one timer, not one each
    await asyncio.sleep(0.6)  # three thresholds: the healthy ones ran past them
    stuck, healthy = started[0], started[1:]
    assert stuck.aborted and stuck.cause is not None and tasks[0].cancelled()
    assert "phase=DeliveringMessage detail=None" in stuck.cause.content
    assert not any(d.aborted for d in healthy)
    assert path.shared.watchdog_aborts == {"smtp_client:unspecified->mx.test@smtp_client": 1}
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0.25)  # its last run finds no connection and does not re-arm
    assert watchdog._timer is None


async def test_an_idle_connection_gets_its_idle_timeout_on_top_of_the_threshold() -> None:
    path = _path("100ms")
    watchdog = Watchdog(path)  # type: ignore[arg-type]
    ready = asyncio.Event()
    holder: list[Dispatcher] = []

    async def connection() -> None:
        dispatcher = path.dispatchers.enter()
        holder.append(dispatcher)
        dispatcher.enter_phase("Idle")
        watchdog.watch()
        ready.set()
        await asyncio.sleep(0.4)  # waiting for a message, well within idle_timeout
        dispatcher.enter_phase("DeliveringMessage")
        await asyncio.sleep(3600)  # then stuck

    task = asyncio.ensure_future(connection())
    await ready.wait()
    await asyncio.sleep(0.35)
    assert not holder[0].aborted  # idle past the threshold: not a wedge
    # Stuck from 0.4 s on: caught a threshold later, not an idle_timeout (10 s) later.
    await asyncio.wait({task}, timeout=2.0)
    assert holder[0].aborted and task.cancelled()
    assert holder[0].cause is not None and "phase=DeliveringMessage" in holder[0].cause.content
    watchdog.cancel()
