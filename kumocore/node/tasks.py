"""Ending a node's background tasks.

The monitors a node starts (memory, free space, CPU usage, the status page's feed) each
run one task for the node's life; stopping one means cancelling it and waiting until it
has really ended, so that nothing of a stopped node still runs when the next one starts
(tests start many in one process).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (None: nothing to do) and return once it has ended."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
