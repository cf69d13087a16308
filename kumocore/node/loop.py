"""The one event-loop runner that ``kumocore serve`` and its workers use."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any


def run(coro: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop when it is installed (faster sockets), else on asyncio's own loop.

    ``KUMOCORE_EVENT_LOOP=asyncio`` forces the standard loop (for comparisons and debugging).
    """
    if os.environ.get("KUMOCORE_EVENT_LOOP", "uvloop") == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)
