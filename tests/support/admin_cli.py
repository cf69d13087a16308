"""Running ``kumocore``'s admin commands in a test, against a node on the same loop."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["run_cli"]


async def run_cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    """``kumocore ARGV...``: its exit code, stdout and stderr. The command runs on a thread
    (urllib blocks) while the node it asks keeps running on this loop."""
    from kumocore.node.cli import main

    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err
