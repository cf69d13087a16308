"""Memory limits and load shedding, as KumoMTA's memory management does it.

A :class:`MemoryMonitor` samples this process's memory usage every
:data:`CHECK_INTERVAL` seconds (:mod:`kumocore.node.memory_limits` says how it is measured)
and keeps two flags in :data:`MEMORY`, which the data path reads as plain attributes —
never a measurement per message:

* ``over_limit`` — usage at or over the soft limit (KumoMTA: no headroom). New SMTP
  connections get ``421 4.3.2 <host> load shedding. Try later``, HTTP injection and
  liveness ``503 load shedding``. On the transition every registered cache is cleared
  and every ready queue drops the bodies of its queued messages (they are spooled).
* ``low`` — usage over the low threshold (80 % of the soft limit unless set): messages
  entering a ready queue leave their body on disk.

Each change of ``over_limit`` is logged at error level, as KumoMTA does. The limits may
be set by the policy (``kumo.set_memory_soft_limit`` ...); a set limit is applied at once.
With ``serve --workers N`` each worker is a process of its own and measures itself
against the limits (KumoMTA is one process): set per-worker limits accordingly.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Protocol

import structlog

from kumocore.errors import ConfigError
from kumocore.node import memory_limits
from kumocore.node.memory_limits import Cgroup, Limits
from kumocore.node.tasks import cancel_and_wait

log = structlog.get_logger("kumocore.memory")

#: Seconds between two samples (KumoMTA's memory thread sleeps 3 s).
CHECK_INTERVAL = 3.0
#: The low threshold, as a fraction of the soft limit, when the policy sets none
#: (computed as KumoMTA does, ``soft * 8 // 10``: exact at any size).
LOW_FRACTION = 0.8


_NAMES = {"hard": "hard_limit", "soft": "soft_limit", "low": "low_thresh"}


class Clearable(Protocol):
    def clear(self) -> None: ...


class MemoryState:
    """The process's limits, the policy's settings and the last sample's verdict."""

    def __init__(self) -> None:
        #: No headroom left: turn new traffic away (read on every connection).
        self.over_limit = False
        #: Over the low threshold: leave bodies on disk as messages move (per message).
        self.low = False
        self.usage: int | None = None
        self.limits = Limits()
        #: The low threshold of the last sample (None: nothing known), for ``/metrics``.
        self.low_in_force: int | None = None
        #: Transitions to over the low threshold / over the soft limit (KumoMTA's
        #: ``memory_low_count`` and ``memory_over_limit_count``).
        self.low_count = 0
        self.over_limit_count = 0
        self._above_low = False
        self.user = {"hard": 0, "soft": 0, "low": 0}  # 0: not set by the policy
        self._cgroup: Cgroup | None = None
        self._cgroup_found = False
        self._caches: weakref.WeakSet[Clearable] = weakref.WeakSet()
        self._on_over_limit: list[Callable[[], object]] = []

    # ------------------------------------------------------------------ settings
    def set_limit(self, which: str, value: object) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or value < 0
            or value != int(value)
        ):
            raise ConfigError(
                f"kumo.set_memory_{_NAMES[which]}: expected a whole number of bytes, got {value!r}"
            )
        self.user[which] = int(value)
        if self.usage is not None:  # the monitor runs: apply the new limit now
            self.sample()

    def hard_limit(self) -> int | None:
        return self.user["hard"] or self._found().hard

    def soft_limit(self) -> int | None:
        return self.user["soft"] or self._found().soft

    def low_thresh(self) -> int | None:
        soft = self.soft_limit()
        return self.user["low"] or (None if soft is None else soft * 8 // 10)

    def _found(self) -> Limits:
        return memory_limits.usage_and_limits(self._find_cgroup())[1]

    def _find_cgroup(self) -> Cgroup | None:
        if not self._cgroup_found:
            self._cgroup, self._cgroup_found = Cgroup.find(), True
        return self._cgroup

    # ------------------------------------------------------------------ what reacts
    def register_cache(self, cache: Clearable) -> None:
        """Clear ``cache`` whenever memory runs out (held weakly: a cache that goes away
        needs no unregistering)."""
        self._caches.add(cache)

    def on_over_limit(self, action: Callable[[], object]) -> Callable[[], None]:
        """Run ``action`` on each transition to over the limit; returns its remover."""
        self._on_over_limit.append(action)
        return lambda: self._on_over_limit.remove(action)

    # ------------------------------------------------------------------ sampling
    def sample(self) -> None:
        """Measure once and update the flags; log and react on a change."""
        usage, found = memory_limits.usage_and_limits(self._find_cgroup())
        soft = self.user["soft"] or found.soft
        self.usage, self.limits = usage, Limits(soft, self.user["hard"] or found.hard)
        if usage is None or soft is None:  # nothing known: pretend all is well
            self.over_limit = self.low = False
            self.low_in_force = None
            return
        low = self.low_in_force = self.user["low"] or soft * 8 // 10
        was_above_low, self._above_low = self._above_low, usage > low
        if self._above_low and not was_above_low:
            self.low_count += 1
        was_over, self.over_limit = self.over_limit, usage >= soft
        # Over the soft limit counts as low too: one test per message covers both.
        self.low = usage > low or self.over_limit
        if self.over_limit and not was_over:
            self.over_limit_count += 1
            log.error(
                f"memory usage {_human(usage)} exceeds limit {_human(soft)}",
                usage=usage,
                limit=soft,
            )
            self._shed()
        elif was_over and not self.over_limit:
            log.error(
                f"memory usage {_human(usage)} is back within limit {_human(soft)}",
                usage=usage,
                limit=soft,
            )

    def _shed(self) -> None:
        for cache in list(self._caches):
            cache.clear()
        for action in list(self._on_over_limit):
            try:
                action()
            except Exception as exc:  # one failing reaction must not stop the others
                log.error("memory reduction failed", error=repr(exc))

    def reset(self) -> None:
        """Forget the policy's settings and the verdict (a new policy, or a test)."""
        self.user = {"hard": 0, "soft": 0, "low": 0}
        self.over_limit = self.low = self._above_low = False
        self.usage = self.low_in_force = None


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover - the loop always returns


#: The process's one memory state (KumoMTA's is process-wide too).
MEMORY = MemoryState()


class MemoryMonitor:
    """Samples :data:`MEMORY` on a timer while the node runs."""

    def __init__(self, state: MemoryState = MEMORY, interval: float = CHECK_INTERVAL) -> None:
        self.state = state
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.state.sample()
        log.info(
            "using memory limits",
            soft=self.state.limits.soft,
            hard=self.state.limits.hard,
            low=self.state.low_thresh(),
        )
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="memory-monitor")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.state.sample()
            except Exception as exc:  # the monitor is what recovers: never let it die
                log.error("unable to query memory info", error=repr(exc))

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self.state.reset()  # the next node (a test's, in this process) starts afresh


# ---------------------------------------------------------------------- public API
def set_memory_hard_limit(limit: int) -> None:
    """Set the hard memory limit in bytes (default: the cgroup or ulimit limit, else the
    physical RAM). As in KumoMTA it is reported, not enforced, and the default soft
    limit stays 75 % of the limit found. Call it in ``pre_init``."""
    MEMORY.set_limit("hard", limit)


def set_memory_soft_limit(limit: int) -> None:
    """Set the soft memory limit in bytes (default: 75 % of the hard limit). While the
    process uses more, new SMTP connections and HTTP injections are turned away, caches
    are emptied and queued bodies dropped from memory. Call it in ``pre_init``."""
    MEMORY.set_limit("soft", limit)


def set_memory_low_thresh(thresh: int) -> None:
    """Set the low memory threshold in bytes (default: 80 % of the soft limit). Over it,
    messages entering a ready queue leave their body on disk. Call it in ``pre_init``."""
    MEMORY.set_limit("low", thresh)


def get_memory_hard_limit() -> int | None:
    """The hard memory limit in bytes: the policy's, else the one found (cgroup, ulimit,
    physical RAM); nil when none is set or found."""
    return MEMORY.hard_limit()


def get_memory_soft_limit() -> int | None:
    """The soft memory limit in bytes (the policy's, else the default); nil when none is
    set or found."""
    return MEMORY.soft_limit()


def get_memory_low_thresh() -> int | None:
    """The low memory threshold in bytes (the policy's, else 80 % of the soft limit); nil
    when no soft limit is set or found."""
    return MEMORY.low_thresh()


def register_memory_cache(cache: Clearable) -> None:
    """Have ``cache.clear()`` called when memory runs out (for plugins' caches)."""
    MEMORY.register_cache(cache)
