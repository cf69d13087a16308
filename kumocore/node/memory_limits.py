"""How much memory this process uses and may use, found the way KumoMTA finds it.

Limits, in KumoMTA's order: a cgroup memory limit (v2 ``memory.high``/``memory.max``,
else v1 ``memory.soft_limit_in_bytes``/``memory.limit_in_bytes``), narrowed by the
``RLIMIT_RSS`` ulimit; without any, the hard limit is the physical RAM (``MemTotal``) and
the soft limit 75 % of the hard one. ``KUMOD_MEMORY_HARD_LIMIT`` and
``KUMOD_MEMORY_SOFT_LIMIT`` override what was found.

Usage: the resident set size (``/proc/self/statm``), or, when a cgroup limit applies, the
cgroup's working set — ``max(current - inactive_file, anon)`` — since the cgroup, not this
process alone, is what the kernel limits. Linux only; elsewhere nothing is known and the
caller treats memory as unlimited.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger("kumocore.memory")

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: cgroup v1 reports "no limit" as a page-rounded 2**63 - 1.
_V1_UNLIMITED = 1 << 62
_warned_stat = False


@dataclass(frozen=True, slots=True)
class Limits:
    """A soft and a hard limit in bytes (None: none found)."""

    soft: int | None = None
    hard: int | None = None

    def narrowed(self, other: Limits) -> Limits:
        return Limits(_min(self.soft, other.soft), _min(self.hard, other.hard))

    @property
    def unlimited(self) -> bool:
        return self.soft is None and self.hard is None


def _min(a: int | None, b: int | None) -> int | None:
    if a is None or b is None:
        return a if b is None else b
    return min(a, b)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def rss_bytes() -> int | None:
    """This process's resident set size (one small procfs read)."""
    text = _read(Path("/proc/self/statm"))
    if text is None:
        return None
    return int(text.split()[1]) * os.sysconf("SC_PAGE_SIZE")


def physical_memory() -> int | None:
    text = _read(Path("/proc/meminfo")) or ""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            value, unit = line.split()[1:3]
            return int(value) * 1024 if unit == "kB" else None
    return None


def rlimits() -> Limits:
    soft, hard = resource.getrlimit(resource.RLIMIT_RSS)
    return Limits(
        None if soft == resource.RLIM_INFINITY else soft,
        None if hard == resource.RLIM_INFINITY else hard,
    )


@dataclass(frozen=True, slots=True)
class Cgroup:
    """This process's memory cgroup directory and its version."""

    path: Path
    v2: bool

    @classmethod
    def find(cls, root: Path = CGROUP_ROOT, proc: Path = Path("/proc/self/cgroup")
             ) -> Cgroup | None:  # fmt: skip
        """The v2 cgroup if it has a memory controller, else the v1 memory cgroup."""
        lines = (_read(proc) or "").splitlines()
        for v2 in (True, False):
            for line in lines:
                parts = line.split(":", 2)
                if len(parts) != 3:
                    continue
                if v2 and parts[0] == "0" and not parts[1]:
                    path = root / parts[2].lstrip("/")
                    if (path / "memory.max").exists():
                        return cls(path, True)
                elif not v2 and "memory" in parts[1].split(","):
                    path = root / "memory" / parts[2].lstrip("/")
                    if (path / "memory.limit_in_bytes").exists():
                        return cls(path, False)
        return None

    def _value(self, name: str) -> int | None:
        text = (_read(self.path / name) or "max").strip()
        if text == "max" or not text.isdigit():
            return None
        value = int(text)
        return None if not self.v2 and value >= _V1_UNLIMITED else value

    def limits(self) -> Limits:
        if self.v2:
            return Limits(self._value("memory.high"), self._value("memory.max"))
        return Limits(
            self._value("memory.soft_limit_in_bytes"), self._value("memory.limit_in_bytes")
        )

    def usage(self) -> int | None:
        """The working set: cold, reclaimable page cache (``inactive_file``) left out,
        floored by anonymous memory; the raw counter when ``memory.stat`` is unreadable."""
        global _warned_stat
        current = self._value("memory.current" if self.v2 else "memory.usage_in_bytes")
        if current is None:
            return None
        stat: dict[str, int] = {}
        for line in (_read(self.path / "memory.stat") or "").splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                stat[key] = int(value)
        if not stat:
            if not _warned_stat:
                _warned_stat = True
                log.warning("cgroup memory.stat unreadable; using the raw usage", usage=current)
            return current
        if self.v2:
            inactive, anon = stat.get("inactive_file", 0), stat.get("anon", 0)
        else:
            inactive = stat.get("total_inactive_file", 0)
            anon = stat.get("total_rss", 0) + stat.get("total_rss_huge", 0)
        return max(current - inactive, anon, 0)


def _env_limit(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        log.error(
            "ignoring an environment variable that is not a byte count", name=name, value=value
        )
        return None


def usage_and_limits(cgroup: Cgroup | None) -> tuple[int | None, Limits]:
    """This process's memory usage and the limits found (not yet the policy's own)."""
    limits = rlimits()
    usage = rss_bytes()
    if cgroup is not None:
        found = cgroup.limits()
        if not found.unlimited:
            limits = limits.narrowed(found)
            usage = cgroup.usage()
    hard = limits.hard if limits.hard is not None else physical_memory()
    soft = limits.soft if limits.soft is not None else (None if hard is None else hard * 3 // 4)
    hard = _env_limit("KUMOD_MEMORY_HARD_LIMIT") or hard
    soft = _env_limit("KUMOD_MEMORY_SOFT_LIMIT") or soft
    return usage, Limits(soft, hard)
