"""The benchmark harness on a tiny load, so that it does not rot between benchmark runs.

Runs ``python -m bench.perf.run`` as ``make bench-short`` does, with 50 messages per side, 50
HTTP recipients and 1,000 spooled messages: every side (Postfix, Postfix + OpenDKIM,
kumocore with and without DKIM, Haraka with and without DKIM) delivers to its
``smtp-sink``, each side's sample is found on disk and signed exactly when the side signs,
and the report ends with the two ratio lines.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.perf.load import missing_tools

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        bool(missing_tools()),
        reason=f"Postfix tools missing: {', '.join(missing_tools())} (apt-get install postfix)",
    ),
    pytest.mark.skipif(
        os.geteuid() != 0, reason="a private Postfix instance needs root (postfix start)"
    ),
]


def test_harness_runs_both_sides_and_ends_with_the_ratio_line(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.perf.run",
            "--mode",
            "short",
            "--only",
            "e2e,http,scheduled",
            "--sizes",
            "2048",
            "--count",
            "200",  # CPU is read in 10 ms ticks: 50 fast Postfix deliveries could read 0
            "--http-recipients",
            "50",
            "--scheduled",
            "1000",
            "--repeats",
            "1",
            "--warmup",
            "10",
            "--timeout",
            "30",
            "--json",
            str(report),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=175,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    lines = proc.stdout.strip().splitlines()
    assert re.fullmatch(r"kumocore/postfix end-to-end ratio: \d+\.\d\d", lines[-1]), output
    assert re.fullmatch(r"kumocore/haraka end-to-end ratio: \d+\.\d\d", lines[-2]), output
    data = json.loads(report.read_text())
    by_side = {run["side"]: run for run in data["e2e"]}
    ran = {"postfix", "kumocore", "kumocore+dkim"} | {
        side
        for side in ("postfix+opendkim", "haraka", "haraka+dkim")
        if side not in data["skipped_sides"]
    }
    assert set(by_side) == ran, output
    for side in ran:
        assert by_side[side]["received"] == 200, output
        assert by_side[side]["cpu_ms_per_message"] > 0, output
    samples = {check["side"]: check for check in data["samples"]}
    for side in ran:
        assert samples[side]["queued_on_disk"], output
        assert samples[side]["dkim_valid"] == ("+" in side), output
        assert bool(samples[side]["dkim_signatures"]) == ("+" in side), output
    assert data["ratio"] > 0
    assert data["http"]["received"] == 50, output
    assert data["scheduled"]["recovered_logged"] == 1000, output
    assert data["failures"] == []
    assert not Path(data["workdir"]).exists(), "the run's temp dir was left behind"


def test_harness_fails_loudly_when_a_side_delivers_nothing(tmp_path: Path) -> None:
    # Postfix relays to a sink port nobody listens on: nothing arrives, exit status 1.
    code = (
        "import sys, bench.perf.run as r, bench.perf.postfix as p\n"
        "orig = p.PostfixInstance.__init__\n"
        "def broken(self, root, *, smtpd_port, relay_port, **kw):\n"
        "    orig(self, root, smtpd_port=smtpd_port, relay_port=1, **kw)\n"
        "p.PostfixInstance.__init__ = broken\n"
        "sys.exit(r.main(sys.argv[1:]))\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "--only",
            "e2e",
            "--sides",
            "postfix,kumocore",
            "--sizes",
            "2048",
            "--count",
            "20",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--timeout",
            "5",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=85,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL: postfix delivered nothing" in proc.stdout
    assert "kumocore/haraka end-to-end ratio: 0.00" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("kumocore/postfix end-to-end ratio: ")


_WITHOUT_PEERS = (
    "import sys, bench.perf.run as r, bench.perf.e2e as e\n"
    "e.haraka_missing = lambda: 'node is not installed (test)'\n"
    "e.opendkim_missing = lambda: 'opendkim is not installed (test)'\n"
    "sys.exit(r.main(sys.argv[1:]))\n"
)


def _run_without_peers(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            _WITHOUT_PEERS,
            "--mode",
            mode,
            "--only",
            "e2e",
            "--sides",
            "postfix,postfix+opendkim,kumocore,kumocore+dkim,haraka",
            "--sizes",
            "2048",
            "--count",
            "20",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--timeout",
            "30",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=85,
        check=False,
    )


def test_short_mode_without_haraka_or_opendkim_says_so_and_passes() -> None:
    proc = _run_without_peers("short")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "e2e: haraka NOT RUN: node is not installed (test)" in proc.stdout
    assert "e2e: postfix+opendkim NOT RUN: opendkim is not installed (test)" in proc.stdout
    assert "not in the ratios: haraka (node is not installed (test))" in proc.stdout
    lines = proc.stdout.strip().splitlines()
    assert lines[-2] == "kumocore/haraka end-to-end ratio: 0.00", output
    # kumocore / Postfix without signing is still measured and in the ratio.
    assert "kumocore/postfix at 2 KB: " in proc.stdout
    ratio = float(lines[-1].rsplit(": ", 1)[1])
    assert ratio > 0, output


def test_full_mode_fails_loudly_when_haraka_or_opendkim_is_missing() -> None:
    proc = _run_without_peers("full")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL: haraka could not run: node is not installed (test)" in proc.stdout
    assert "FAIL: postfix+opendkim could not run" in proc.stdout
