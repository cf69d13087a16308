"""``serve --workers 2``: a worker that dies and is restarted holds the node's ready-queue
suspensions again, so the ready queue stays held on every worker until it is cancelled.

Real supervisor, real workers (the node of :mod:`tests.core.test_node_ready_q`), a real
SIGKILL, and a real SMTP sink that the held ready queue must not reach.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from kumocore.testing.smtp_sink import RecordingSink
from tests.core.test_node_ready_q import PATH, READY_Q, Workers, ask_worker, node, send

pytestmark = pytest.mark.slow

__all__ = ["node"]  # the fixture, shared with the module it comes from


def worker_pids(supervisor: int) -> set[int]:
    """The supervisor's child processes (its workers), from ``/proc``."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text()
    return {int(pid) for pid in children.split()}


async def replaced(workers: Workers, victim: int, timeout: float = 60.0) -> None:
    """Wait until the supervisor restarted the killed worker and both sockets answer."""
    deadline = time.monotonic() + timeout
    while True:
        pids = worker_pids(workers.process.pid)
        if victim not in pids and len(pids) == 2:
            try:
                for socket in workers.sockets():
                    await ask_worker(socket, PATH)
                if len(workers.sockets()) == 2:
                    return
            except OSError:
                pass
        assert time.monotonic() < deadline, f"no replacement for worker {victim}: {pids}"
        await asyncio.sleep(0.2)


async def test_a_restarted_worker_holds_the_suspensions_the_node_has(
    node: tuple[Workers, RecordingSink],
) -> None:
    workers, sink = node
    status, created, _ = await workers.api(
        "POST", PATH, {"name": READY_Q, "reason": "blocked", "duration": "1h"})
    assert status == 200, created
    victim = min(worker_pids(workers.process.pid))
    os.kill(victim, signal.SIGKILL)
    await replaced(workers, victim)
    for socket in workers.sockets():  # the new worker holds it too, under the same id
        listed = await ask_worker(socket, PATH)
        assert [(s["id"], s["name"], s["reason"]) for s in listed] == [
            (created["id"], READY_Q, "blocked")], socket
    await send(workers.smtp_port, 20)  # on as many connections: both workers get some
    await asyncio.sleep(2.0)
    assert sink.messages == []
    status, _, _ = await workers.api("DELETE", PATH, {"id": created["id"]})
    assert status == 200
    await sink.wait_for(20, timeout=30)
