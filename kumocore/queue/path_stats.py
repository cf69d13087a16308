"""What happened on each egress path.

Operators ask "why is this queue not moving?" first: ``queue summary`` shows, per egress
path, how many deliveries, transient failures and bounces it saw since start and the
last error (``inspect`` shows a message's last transient response, kept on the message's
record, :class:`kumocore.queue.queued.Queued`). Kept in memory only (they are statistics,
not state), bounded to :data:`MAX_PATHS` paths.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kumocore.mail.response import Response

#: Paths remembered; beyond it the least recently active one is forgotten.
MAX_PATHS = 10_000


@dataclass
class PathStats:
    delivered: int = 0
    transient: int = 0
    failed: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_active: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"delivered": self.delivered, "transient": self.transient,
                "failed": self.failed, "last_error": self.last_error,
                "last_error_at": self.last_error_at}  # fmt: skip


class OutcomeStats:
    """Per-path outcome counts and last errors (see the module docstring)."""

    def __init__(self) -> None:
        self.paths: dict[str, PathStats] = {}

    def record(self, path_name: str | None, kind: str, response: Response) -> None:
        """``kind`` is ``delivered``, ``transient`` or ``failed``."""
        if path_name is None:
            return
        stats = self.paths.get(path_name)
        if stats is None:
            if len(self.paths) >= MAX_PATHS:
                oldest = min(self.paths, key=lambda name: self.paths[name].last_active)
                del self.paths[oldest]
            stats = self.paths[path_name] = PathStats()
        now = time.time()
        stats.last_active = now
        setattr(stats, kind, getattr(stats, kind) + 1)
        if kind != "delivered":
            stats.last_error, stats.last_error_at = response.to_single_line(), now
