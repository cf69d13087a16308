"""KumoMTA's CPU usage gauges for ``/metrics``: ``process_cpu_usage_sum``,
``process_cpu_usage_normalized``, ``system_cpu_usage_sum`` and
``system_cpu_usage_normalized``.

They are whole percentages. ``_sum`` adds up the CPUs, so 200 means two CPUs' worth of
work; ``_normalized`` divides that by the number of CPUs (rounded down), so 100 means
every CPU is busy. ``process_*`` is this process (all its threads), ``system_*`` the
whole machine. As in KumoMTA, the values describe the last :data:`INTERVAL` seconds:
a Prometheus scrape every 30 s sees a recent 3 s window, not a 30 s average. That is
why a monitor task samples the clock ticks on a timer rather than the scrape computing
a delta since the previous scrape (whose window would be whatever the scrape interval is).

The counts come from ``/proc`` (about 35 us for both files), read as sysinfo (KumoMTA's
library) reads them: the system's busy ticks are user, nice, system, irq and softirq
(guest time is already in user/nice, so it is taken out), its total ticks are every
field of the aggregate ``cpu`` line; the process's ticks are ``utime + stime`` of
``/proc/self/stat``, set against the same clock (the system's total ticks per CPU).
Until a first interval has been measured (KumoMTA waits 0.2 s for it) the gauges are
left out of ``/metrics`` rather than shown as 0: an unmeasured node is not an idle one.
With ``serve --workers N``, each worker reports itself; the node's ``/metrics`` adds up
the ``process_*`` values and keeps the highest ``system_*`` one (:mod:`kumocore.admin.merge`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog
from prometheus_client.metrics_core import Metric

from kumocore.node.tasks import cancel_and_wait

__all__ = ["FIRST_INTERVAL", "INTERVAL", "CpuTimes", "CpuUsage", "CpuUsageMonitor",
           "cpu_usage_metrics", "read_cpu_times", "usage_between"]  # fmt: skip

log = structlog.get_logger("kumocore.node.cpu_usage")

#: Seconds between two refreshes (KumoMTA's monitor sleeps 3 s).
INTERVAL = 3.0
#: Seconds from the start to the first reading (sysinfo's minimum update interval).
FIRST_INTERVAL = 0.2

_PROC_STAT = Path("/proc/stat")
_SELF_STAT = Path("/proc/self/stat")

_HELP = {
    "process_cpu_usage_sum": "CPU usage of this process in percent, summed over the CPUs "
    "(200 = two CPUs fully busy)",
    "process_cpu_usage_normalized": "CPU usage of this process in percent of all CPUs "
    "(process_cpu_usage_sum divided by the number of CPUs)",
    "system_cpu_usage_sum": "CPU usage of the whole system in percent, summed over the "
    "CPUs (200 = two CPUs fully busy)",
    "system_cpu_usage_normalized": "CPU usage of the whole system in percent of all CPUs "
    "(system_cpu_usage_sum divided by the number of CPUs)",
}


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """Clock ticks since boot: this process's, the system's busy and total ticks (all
    CPUs together), and the number of CPUs counted in ``/proc/stat``."""

    process: int
    busy: int
    total: int
    cpus: int


@dataclass(frozen=True, slots=True)
class CpuUsage:
    """Whole percentages over one interval, summed over the CPUs (KumoMTA's ``_sum``)."""

    process_sum: int
    system_sum: int
    cpus: int

    @property
    def process_normalized(self) -> int:
        return self.process_sum // self.cpus

    @property
    def system_normalized(self) -> int:
        return self.system_sum // self.cpus


def read_cpu_times(proc_stat: Path = _PROC_STAT, self_stat: Path = _SELF_STAT) -> CpuTimes:
    """The counts now (raises OSError/ValueError when ``/proc`` is missing or odd)."""
    lines = proc_stat.read_bytes().split(b"\n")
    ticks = [int(field) for field in lines[0].split()[1:]]  # the aggregate "cpu" line
    user, nice, system, _idle, _iowait, irq, softirq = ticks[:7]
    guest = sum(ticks[8:10])  # guest, guest_nice: already counted in user and nice
    cpus = sum(1 for line in lines[1:] if line[:3] == b"cpu" and line[3:4].isdigit())
    # Fields after the command name, which may hold spaces and parentheses itself.
    fields = self_stat.read_bytes().rpartition(b")")[2].split()
    process = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return CpuTimes(process=process, busy=user + nice - guest + system + irq + softirq,
                    total=sum(ticks[:8]), cpus=max(cpus, 1))  # fmt: skip


def usage_between(before: CpuTimes, after: CpuTimes) -> CpuUsage | None:
    """The usage from ``before`` to ``after``; None when no tick has passed yet."""
    elapsed = after.total - before.total  # ticks of all CPUs together
    if elapsed <= 0:
        return None
    cpus = after.cpus
    full = 100 * cpus  # what a fully busy machine reads, the most either can read
    system = full * max(after.busy - before.busy, 0) // elapsed
    process = full * max(after.process - before.process, 0) // elapsed
    return CpuUsage(process_sum=min(process, full), system_sum=min(system, full), cpus=cpus)


class CpuUsageMonitor:
    """Refreshes :attr:`latest` every ``interval`` seconds while the node runs.

    A task on the node's event loop, like the memory monitor: the refresh reads two small
    ``/proc`` files, which never block, so it needs no thread of its own."""

    def __init__(self, interval: float = INTERVAL, first_interval: float = FIRST_INTERVAL,
                 read: Callable[[], CpuTimes] = read_cpu_times) -> None:  # fmt: skip
        self.interval = interval
        self.first_interval = first_interval
        self._read = read
        #: The usage over the last interval; None until one has been measured.
        self.latest: CpuUsage | None = None
        self._previous: CpuTimes | None = None
        self._task: asyncio.Task[None] | None = None

    def refresh(self) -> None:
        """Read the counts now and measure the usage since the previous reading."""
        now = self._read()
        if self._previous is not None:
            usage = usage_between(self._previous, now)
            if usage is not None:
                self.latest = usage
        self._previous = now

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cpu-usage")

    async def _run(self) -> None:
        delay = self.first_interval
        while True:
            try:
                self.refresh()
            except (OSError, ValueError, IndexError) as exc:  # no /proc: leave them out
                log.warning("cannot read CPU usage", error=repr(exc))
                return
            await asyncio.sleep(delay)
            delay = self.interval

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None


def cpu_usage_metrics(monitor: CpuUsageMonitor) -> Iterator[Metric]:
    """The four gauges from ``monitor``'s last reading; nothing before the first one."""
    usage = monitor.latest
    if usage is None:
        return
    values = {
        "process_cpu_usage_sum": usage.process_sum,
        "process_cpu_usage_normalized": usage.process_normalized,
        "system_cpu_usage_sum": usage.system_sum,
        "system_cpu_usage_normalized": usage.system_normalized,
    }
    for name, value in values.items():
        metric = Metric(name, _HELP[name], "gauge")
        metric.add_sample(name, {}, value)
        yield metric
