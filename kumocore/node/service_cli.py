"""Running a service command (``kumocore tsa serve``, ``kumocore proxy serve``, their
``validate``) the same way: the work under ``asyncio.run``, and a mistake in the policy
or its configuration printed as one line naming the command, exit status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from typing import Any


def run_service(command: str, work: Coroutine[Any, Any, Any], *, show: bool = False) -> int:
    """``asyncio.run(work)``: 0 (its result printed when ``show``), or 1 when the policy or
    its configuration stopped it (printed as ``kumocore COMMAND: error``)."""
    import asyncio

    from kumocore.errors import ConfigError, HookError, PolicyError

    try:
        result = asyncio.run(work)
    except (ConfigError, PolicyError, HookError) as exc:
        print(f"kumocore {command}: {exc}", file=sys.stderr)
        return 1
    if show:
        print(result)
    return 0
