"""The benchmark harness on a tiny load, so that it does not rot between benchmark runs.

Runs ``python -m bench.run`` as ``make bench-short`` does, with 50 messages per side, 50
HTTP recipients and 1,000 spooled messages: a private Postfix and ``kumocore serve`` both
deliver to ``smtp-sink``, and the report ends with the ratio line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.load import missing_tools

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(90),
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
            "bench.run",
            "--mode",
            "short",
            "--only",
            "e2e,http,scheduled",
            "--sizes",
            "2048",
            "--count",
            "50",
            "--http-recipients",
            "50",
            "--scheduled",
            "1000",
            "--timeout",
            "30",
            "--json",
            str(report),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=85,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    lines = proc.stdout.strip().splitlines()
    assert re.fullmatch(r"kumocore/postfix end-to-end ratio: \d+\.\d\d", lines[-1]), output
    data = json.loads(report.read_text())
    by_side = {run["side"]: run for run in data["e2e"]}
    assert by_side["postfix"]["received"] == 50, output
    assert by_side["kumocore"]["received"] == 50, output
    assert data["ratio"] > 0
    assert data["http"]["received"] == 50, output
    assert data["scheduled"]["recovered_logged"] == 1000, output
    assert data["failures"] == []
    assert not Path(data["workdir"]).exists(), "the run's temp dir was left behind"


def test_harness_fails_loudly_when_a_side_delivers_nothing(tmp_path: Path) -> None:
    # Postfix relays to a sink port nobody listens on: nothing arrives, exit status 1.
    code = (
        "import sys, bench.run as r, bench.postfix as p\n"
        "orig = p.PostfixInstance.__init__\n"
        "def broken(self, root, *, smtpd_port, relay_port, concurrency=20):\n"
        "    orig(self, root, smtpd_port=smtpd_port, relay_port=1, concurrency=concurrency)\n"
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
            "--sizes",
            "2048",
            "--count",
            "20",
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
    assert proc.stdout.strip().splitlines()[-1].startswith("kumocore/postfix end-to-end ratio: ")
