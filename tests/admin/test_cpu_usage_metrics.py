"""KumoMTA's CPU usage gauges (``process_cpu_usage_sum``/``_normalized``,
``system_cpu_usage_sum``/``_normalized``): measured from ``/proc`` over an interval,
exposed by a real node's ``/metrics``, and merged across workers without adding up the
machine's usage."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp import web

from kumocore.admin.merge import merge_metrics_text
from kumocore.admin.peers import PeerAnswer
from kumocore.node.cpu_usage import (
    CpuTimes,
    CpuUsage,
    CpuUsageMonitor,
    cpu_usage_metrics,
    read_cpu_times,
    usage_between,
)
from kumocore.testing.plugin import MakeNode
from tests.support.metric_samples import samples, scrape

NAMES = ("process_cpu_usage_sum", "process_cpu_usage_normalized",
         "system_cpu_usage_sum", "system_cpu_usage_normalized")  # fmt: skip


def _burn(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def _measure(busy: bool, seconds: float = 0.5) -> CpuUsage:
    monitor = CpuUsageMonitor()
    monitor.refresh()
    if busy:
        _burn(seconds)
    else:
        time.sleep(seconds)
    monitor.refresh()
    assert monitor.latest is not None
    return monitor.latest


def test_process_usage_rises_while_this_process_burns_a_cpu() -> None:
    idle, busy = _measure(busy=False), _measure(busy=True)
    assert idle.process_sum < 30
    # One thread spinning is one CPU's worth (100), less what other work on a shared
    # machine takes from it; the system reads at least as much as this process (give or
    # take a tick: the two files are read a moment apart).
    assert busy.process_sum >= max(25, idle.process_sum + 20)
    assert busy.system_sum >= busy.process_sum - 10
    assert busy.process_sum <= 100 * busy.cpus and busy.system_sum <= 100 * busy.cpus


def test_usage_sums_over_cpus_and_normalized_is_the_sum_divided_by_cpus_rounded_down() -> None:
    before = CpuTimes(process=1000, busy=5000, total=10_000, cpus=4)
    # 400 ticks of all 4 CPUs together is 100 ticks of wall time: the process ran 150
    # (1.5 CPUs) and the system was busy 301 (3.01 CPUs).
    after = CpuTimes(process=1150, busy=5301, total=10_400, cpus=4)
    usage = usage_between(before, after)
    assert usage == CpuUsage(process_sum=150, system_sum=301, cpus=4)
    assert (usage.process_normalized, usage.system_normalized) == (37, 75)


def test_usage_is_capped_at_every_cpu_busy_and_unknown_when_no_tick_passed() -> None:
    before = CpuTimes(process=0, busy=0, total=100, cpus=2)
    usage = usage_between(before, CpuTimes(process=500, busy=100, total=200, cpus=2))
    assert usage is not None and (usage.process_sum, usage.system_sum) == (200, 200)
    assert usage_between(before, before) is None


def test_proc_files_are_parsed_as_sysinfo_reads_them(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  700 50 100 1000 40 5 5 10 30 20\ncpu0 1 2 3 4 5 6 7 8 0 0\n"
                    "cpu1 1 2 3 4 5 6 7 8 0 0\nintr 1 2 3\nctxt 5\n")
    own = tmp_path / "self_stat"
    # A command name holding ") " must not shift the fields: utime 17, stime 4.
    own.write_text("42 (odd) name) S 1 42 42 0 -1 4194304 10 0 0 0 17 4 0 0 20 0 1 0 9\n")
    times = read_cpu_times(stat, own)
    # guest (30 + 20) is already in user and nice; steal counts in the total only.
    assert times == CpuTimes(process=21, busy=700 + 50 - 50 + 100 + 5 + 5,
                             total=700 + 50 + 100 + 1000 + 40 + 5 + 5 + 10, cpus=2)


def test_gauges_are_left_out_until_a_first_interval_is_measured() -> None:
    monitor = CpuUsageMonitor()
    assert list(cpu_usage_metrics(monitor)) == []
    monitor.refresh()
    assert list(cpu_usage_metrics(monitor)) == []  # one reading is not a usage yet
    time.sleep(0.05)
    monitor.refresh()
    assert [metric.name for metric in cpu_usage_metrics(monitor)] == list(NAMES)


async def test_the_monitor_task_refreshes_on_its_timer_until_stopped() -> None:
    monitor = CpuUsageMonitor(interval=0.05, first_interval=0.05)
    monitor.start()
    await asyncio.sleep(0.3)
    first = monitor.latest
    assert first is not None
    await monitor.stop()
    await asyncio.sleep(0.15)
    assert monitor.latest is first  # stopped: no refresh since


async def test_a_real_node_exposes_the_four_gauges_soon_after_it_starts(
    make_node: MakeNode,
) -> None:
    node = await make_node()
    cpus = read_cpu_times().cpus
    deadline = time.monotonic() + 3.0
    values = await scrape(node)
    while ("system_cpu_usage_sum", ()) not in values and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        values = await scrape(node)
    gauges = {name: values[(name, ())] for name in NAMES}
    assert 0 <= gauges["process_cpu_usage_sum"] <= 100 * cpus
    assert 0 <= gauges["system_cpu_usage_sum"] <= 100 * cpus
    assert gauges["process_cpu_usage_normalized"] == gauges["process_cpu_usage_sum"] // cpus
    assert gauges["system_cpu_usage_normalized"] == gauges["system_cpu_usage_sum"] // cpus


def _worker_text(process: int, system: int) -> bytes:
    lines = []
    for name, value in (("process_cpu_usage_sum", process), ("system_cpu_usage_sum", system),
                        ("system_cpu_usage_normalized", system // 2)):
        lines += [f"# HELP {name} x", f"# TYPE {name} gauge", f"{name} {value}"]
    return ("\n".join(lines) + "\n").encode()


def test_workers_merge_adds_process_usage_but_keeps_the_highest_system_usage() -> None:
    local = web.Response(body=_worker_text(process=40, system=120))
    merged = merge_metrics_text(local, [PeerAnswer(1, 200, _worker_text(60, 130))])
    assert isinstance(merged.body, bytes)
    values = samples(merged.body.decode())
    assert values[("process_cpu_usage_sum", ())] == 100  # the node's workers together
    assert values[("system_cpu_usage_sum", ())] == 130  # the one machine, not 250
    assert values[("system_cpu_usage_normalized", ())] == 65
