"""Free space and inodes under the spools: refuse reception *before* a disk is full.

KumoMTA's ``kumo.define_spool`` takes ``min_free_space`` and ``min_free_inodes`` (default
``"10%"`` each). A :class:`StorageMonitor` checks every spool path with ``statvfs`` once
per :data:`CHECK_INTERVAL` (and at once after a failed spool write); while any is under
its floor, intake refuses new messages with a 4xx and ``/api/check-liveness/v1`` answers
503 ``storage is too full``. Once space is back, the next check clears it: recovery needs
no restart. Messages already spooled keep being delivered (that frees space too).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from kumocore.errors import Rejection
from kumocore.node.tasks import cancel_and_wait

if TYPE_CHECKING:
    from kumocore.config.spool import MinFree, SpoolDefinition

log = structlog.get_logger("kumocore.storage")

#: Seconds between two checks of every monitored path (KumoMTA checks every 5 s).
CHECK_INTERVAL = 1.0
#: What the SMTP client (and an HTTP injector, per recipient) is told while refused.
REFUSAL_CODE = 421
REFUSAL_TEXT = "4.3.1 insufficient system storage: spool disk is too full. Try later"
#: What liveness says (KumoMTA's text).
LIVENESS_TEXT = "storage is too full"


@dataclass(frozen=True, slots=True)
class MonitoredPath:
    """One location and its floors (``name`` is the spool's name, for the messages)."""

    name: str
    path: Path
    min_free_space: MinFree
    min_free_inodes: MinFree

    def shortfall(self) -> str | None:
        """Why this path is under a floor, or None when it is fine (or not there yet)."""
        try:
            st = os.statvfs(existing_parent(self.path))
        except OSError as exc:
            return f"{self.name} spool {str(self.path)!r}: cannot check free space: {exc}"
        space = (st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)
        inodes = (st.f_favail, st.f_files)
        if not self.min_free_space.is_satisfied(*space):
            return (f"{self.name} spool {str(self.path)!r}: {space[0]} bytes free, under "
                    f"min_free_space {self.min_free_space} "
                    f"({self.min_free_space.threshold(space[1])} bytes)")
        # Some filesystems (btrfs, tmpfs with nr_inodes=0) report no inode limit at all.
        if inodes[1] and not self.min_free_inodes.is_satisfied(*inodes):
            return (f"{self.name} spool {str(self.path)!r}: {inodes[0]} inodes free, under "
                    f"min_free_inodes {self.min_free_inodes} "
                    f"({self.min_free_inodes.threshold(inodes[1])} inodes)")
        return None


def existing_parent(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (a spool directory may not exist yet)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


class StorageMonitor:
    """Tracks whether every monitored path is above its floors."""

    def __init__(self, paths: Iterable[MonitoredPath]) -> None:
        self.paths = list(paths)
        self.reasons: list[str] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_spools(cls, spools: Iterable[SpoolDefinition]) -> StorageMonitor:
        return cls(MonitoredPath(d.name, Path(d.path), d.min_free_space, d.min_free_inodes)
                   for d in spools)

    @property
    def over_limit(self) -> bool:
        return bool(self.reasons)

    def check(self) -> bool:
        """Check every path now; True when all are fine. Logs each change of state."""
        reasons = [r for r in (p.shortfall() for p in self.paths) if r is not None]
        if reasons and not self.reasons:
            log.error("spool storage under its free space floor: refusing new messages",
                      reasons=reasons)
        elif self.reasons and not reasons:
            log.warning("spool storage has recovered: accepting messages again")
        self.reasons = reasons
        return not reasons

    def refusal(self) -> Rejection | None:
        """The rejection intake answers while storage is too full, else None."""
        if not self.reasons:
            return None
        return Rejection(REFUSAL_CODE, REFUSAL_TEXT)

    def start(self) -> None:
        self.check()
        if self._task is None and self.paths:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="storage-monitor")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            try:
                await asyncio.to_thread(self.check)  # statvfs of a hung NFS must not stall
            except Exception as exc:  # never let the monitor die: it is what recovers
                log.error("free space check failed", error=repr(exc))

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
