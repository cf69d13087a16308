"""bench.micro.spool_kinds: bodies coming and going, for each group-commit spool kind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.micro.spool_kinds import measure


@pytest.mark.parametrize("kind", ["RocksDB", "LMDB"])
async def test_the_churn_benchmark_reports_rate_cpu_drift_and_disk_for_each_kind(
    tmp_path: Path, kind: str,
) -> None:
    line = await measure(kind, tmp_path / "data", puts=300, writers=4, kept=0.2)
    found = re.fullmatch(
        rf"{kind} +puts/s= *(\d+) CPU/put= *(\d+) us last/first quarter= *([\d.]+) "
        r"disk= *([\d.]+) MiB live= *([\d.]+) MiB", line)
    assert found, line
    rate, cpu, drift, disk, live = (float(value) for value in found.groups())
    assert rate > 0 and cpu > 0 and drift > 0
    assert live > 0 and disk >= live  # what was kept is on disk
