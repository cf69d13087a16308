"""Run a child that prints a line per acknowledged write, and kill -9 it mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lines_until_killed(args: list[str], kill_at: int) -> list[str]:
    """Start ``python args...`` in the repository, SIGKILL it once it printed ``kill_at``
    lines, and return every line it printed (what it printed before dying was
    acknowledged too). Fails if the child was not the one to end by the kill."""
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:  # killed mid-stream, while writes are in flight
            lines.append(line.strip())
            if len(lines) == kill_at:
                os.kill(proc.pid, signal.SIGKILL)
                break
        lines.extend(line.strip() for line in proc.stdout)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return lines
