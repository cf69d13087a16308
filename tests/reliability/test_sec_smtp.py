"""The SMTP listener's defences against a real ``kumocore serve`` (issue 14, findings 1-4,
16 and AUTH guessing): the bench section ``sec_smtp`` at its short size, every hostile
case must hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.reliability.bench import MODES, Bench
from bench.reliability.crash import World
from bench.reliability.sec_smtp import section_sec_smtp


@pytest.mark.slow
async def test_every_sec_smtp_hostile_case_holds(world: World, tmp_path: Path) -> None:
    bench = Bench(MODES["short"], world, tmp_path)
    try:
        await section_sec_smtp(bench)
    finally:
        bench.stop_servers()
    cases = {case: held for _, case, held in bench.hostile_cases}
    assert len(cases) == 10, cases
    # The bench holds the stall cases to 100 ms; here, on a machine shared with other
    # test runs, the bound is generous (before the fix one flood added 520 ms).
    failed = [case for case, held in cases.items() if not held and "stall" not in case]
    assert failed == [], bench.problems
    figures = bench.figures["sec_smtp"]
    for stall in figures["pipelining_stall"].values():
        assert stall["extra_ms_median"] < 400, stall
    assert figures["abandoned_tls"]["sessions_left_after_deadline"] == 0
    assert figures["rejection_flood"]["rejection_records"] <= 25
