"""An egress path held by traffic shaping automation (``Suspend``) resumes when its hold is
over, whatever the clocks do: the hold is a wall-clock time, the loop's timers run on the
monotonic clock and may fire a tick early."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from kumocore.config import EgressPathConfig, EgressSource
from kumocore.queue import path as path_module
from kumocore.queue.egress import PathKey
from kumocore.queue.session import SmtpEgressPath


def _path() -> tuple[SmtpEgressPath, list[bool]]:
    """A path whose wake-ups are recorded (``True`` if it was still held then)."""
    ready = SmtpEgressPath(
        SimpleNamespace(tsa=None, held_until=lambda name: 0.0, admin=None),  # type: ignore[arg-type]
        PathKey("unspecified", "mx.example.com"), "example.com",
        EgressSource.from_options({"name": "unspecified"}), EgressPathConfig.from_options({}))
    wakes: list[bool] = []
    ready.wake = lambda: wakes.append(ready.suspended)  # type: ignore[method-assign]
    return ready, wakes


async def test_a_hold_whose_timer_fires_before_the_wall_clock_says_it_is_over_still_resumes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ready, wakes = _path()
    behind = [0.0]
    monkeypatch.setattr(path_module.time, "time", lambda real=time.time: real() - behind[0])
    ready.suspend_until(time.time() + 0.05)
    # Once the timer is armed, the wall clock falls 30 ms behind (a step, or the loop's
    # timer running a tick early): when the timer fires the hold is not over yet.
    behind[0] = 0.03
    await asyncio.sleep(0.2)
    assert wakes and wakes[-1] is False, wakes
    assert True not in wakes  # never woken while still held


async def test_a_hold_lifted_after_it_lapsed_wakes_the_path() -> None:
    ready, wakes = _path()
    ready.suspend_until(time.time() + 10)
    ready.suspended_until = time.time() - 1  # lapsed, and its timer is not due yet
    ready.suspend_until(0.0)  # the automation's next sync lifts it
    assert wakes == [False]


async def test_a_hold_that_is_extended_does_not_resume_at_the_old_time() -> None:
    ready, wakes = _path()
    ready.suspend_until(time.time() + 0.05)
    ready.suspend_until(time.time() + 10)
    await asyncio.sleep(0.15)
    assert wakes == []
