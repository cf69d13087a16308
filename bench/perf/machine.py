"""What the benchmark records about the machine: CPU use, hardware, Postfix's version."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from typing import Any


def _cpu_ticks() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]), idle


class CpuMeter:
    def __init__(self) -> None:
        self.total, self.idle = _cpu_ticks()
        self.started = time.perf_counter()

    def busy_cores(self) -> float:
        total, idle = _cpu_ticks()
        seconds = time.perf_counter() - self.started
        ticks = os.sysconf("SC_CLK_TCK")
        busy = (total - self.total) - (idle - self.idle)
        return busy / ticks / seconds if seconds > 0 else 0.0


def machine() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kib = int(fh.readline().split()[1])

    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def postfix_version() -> str:

    from bench.perf.load import tool_path

    try:
        out = subprocess.run(
            [tool_path("postconf") or "postconf", "-d", "-h", "mail_version"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def openssl_rsa2048(seconds: int = 1) -> float | None:
    """RSA-2048 signatures per second on one core (``openssl speed rsa2048``): the host's
    signing speed, beside every DKIM figure so that a host effect can be told apart."""
    import re

    try:
        out = subprocess.run(
            ["openssl", "speed", "-seconds", str(seconds), "rsa2048"],
            capture_output=True,
            text=True,
            timeout=60 + 10 * seconds,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.stdout.splitlines():
        # "rsa 2048 bits 0.000822s 0.000024s   1216.5  41212.1" (sign/s is the first rate)
        match = re.match(r"\s*rsa\s+2048 bits\s+\S+s\s+\S+s\s+([\d.]+)", line)
        if match:
            return float(match.group(1))
    return None
