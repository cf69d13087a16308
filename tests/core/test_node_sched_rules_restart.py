"""``serve --workers 2``: a worker that dies and is restarted holds the node's scheduled-queue
suspensions and bounce rules again, whole (id, selectors, reason, end), so mail it receives
afterwards is held or bounced as on the other worker.

Real supervisor, real workers (the node of :mod:`tests.core.test_node_ready_q`, with local
logs added), a real SIGKILL, a real SMTP sink and the AdminBounce records in the log.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kumocore.logs.reader import iter_records
from kumocore.testing.smtp_sink import RecordingSink
from tests.core.test_node_ready_q import POLICY, Workers, ask_worker, running_node, send
from tests.core.test_node_ready_q_restart import replaced, worker_pids

pytestmark = pytest.mark.slow

SUSPEND = "/api/admin/suspend/v1"
BOUNCE = "/api/admin/bounce/v1"
PEER_RULES = "/kumocore/peer/rules"
LOGS = "kumo.configure_local_logs { log_dir = dir .. '/logs' }\n"
#: Retries every second: a suspension defers each due message to its next retry (as in
#: KumoMTA), so mail held by a cancelled suspension goes out at its next retry.
QUEUE = """
kumo.on('get_queue_config', function()
  return kumo.make_queue_config { retry_interval = '1s', max_retry_interval = '1s' }
end)
"""


@pytest.fixture
async def logged_node(tmp_path: Path) -> AsyncIterator[tuple[Workers, RecordingSink]]:
    """Two workers delivering to ``sink``, both logging to ``tmp_path/logs``."""
    anchor = "  kumo.define_spool { name = 'data'"
    policy = POLICY.replace(anchor, "  " + LOGS + anchor, 1) + QUEUE
    async with running_node(tmp_path, policy) as node:
        yield node


def worker_index(pid: int) -> str:
    """``KUMOCORE_WORKER_INDEX`` of a running worker, from its environment."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    (index,) = [v[len(b"KUMOCORE_WORKER_INDEX="):] for v in environ
                if v.startswith(b"KUMOCORE_WORKER_INDEX=")]  # fmt: skip
    return index.decode()


async def restart_one(workers: Workers) -> tuple[Path, Path]:
    """SIGKILL one worker, wait for its replacement; (restarted socket, surviving socket)."""
    victim = min(worker_pids(workers.process.pid))
    index = worker_index(victim)
    os.kill(victim, signal.SIGKILL)
    await replaced(workers, victim)
    # The replacement has its predecessor's index, so its socket's name.
    (fresh,) = [p for p in workers.sockets() if p.name == f"worker-{index}.sock"]
    (survivor,) = [p for p in workers.sockets() if p != fresh]
    return fresh, survivor


def spooled(workers: Workers) -> list[Path]:
    """The message files left in the workers' meta spools."""
    return [p for p in (workers.root / "spool" / "meta").rglob("*") if p.is_file()]


async def total_bounced(socket: Path) -> int:
    return sum(rule["total_bounced"] for rule in await ask_worker(socket, BOUNCE))


def admin_bounces(workers: Workers) -> list[dict[str, Any]]:
    records = iter_records(workers.root / "logs", types=["AdminBounce"], on_problem=lambda _: None)
    return list(records)


async def held(sockets: list[Path]) -> list[int]:
    """How many messages each worker holds in its scheduled queues."""
    return [(await ask_worker(s, "/api/admin/queue-summary/v1"))["totals"]["messages"]
            for s in sockets]  # fmt: skip


async def test_a_restarted_worker_holds_a_suspended_domain_until_the_rule_is_cancelled(
    logged_node: tuple[Workers, RecordingSink],
) -> None:
    workers, sink = logged_node
    status, created, _ = await workers.api("POST", SUSPEND, {
        "domain": "dest.test", "reason": "paused for the test", "duration": "1h"})
    assert status == 200, created
    await send(workers.smtp_port, 10, local_part="before")
    before = dict(zip(workers.sockets(), await held(workers.sockets()), strict=True))
    assert sum(before.values()) == 10 and all(before.values()), f"one took all: {before}"
    fresh, survivor = await restart_one(workers)
    # The same rule, field for field (its exact end included), on both workers.
    mine = await ask_worker(fresh, f"{PEER_RULES}/suspend")
    assert mine == await ask_worker(survivor, f"{PEER_RULES}/suspend")
    assert [(r["id"], r["domain"], r["reason"]) for r in mine] == [
        (created["id"], "dest.test", "paused for the test")]
    await send(workers.smtp_port, 20, local_part="after")  # both workers get some
    await asyncio.sleep(2.0)
    assert sink.messages == []  # neither what the restarted worker recovered nor new mail
    now = dict(zip((fresh, survivor), await held([fresh, survivor]), strict=True))
    assert sum(now.values()) == 30, now  # the restarted worker recovered its share
    assert now[fresh] > before[fresh], f"the restarted worker received none: {now}"
    status, _, _ = await workers.api("DELETE", SUSPEND, {"id": created["id"]})
    assert status == 200
    await sink.wait_for(30, timeout=30)


async def test_a_restarted_worker_bounces_with_the_rule_and_counts_only_its_own_bounces(
    logged_node: tuple[Workers, RecordingSink],
) -> None:
    workers, sink = logged_node
    status, created, _ = await workers.api("POST", BOUNCE, {
        "queue_names": ["dest.test"], "reason": "cleanup for the test", "duration": "1h"})
    assert status == 200, created
    await send(workers.smtp_port, 10, local_part="before")
    # Bounced and gone from the spools, so the restarted worker recovers none of them (a
    # message killed before its outcome was final is handled again, as after any crash).
    deadline = time.monotonic() + 20
    while spooled(workers):
        assert time.monotonic() < deadline, spooled(workers)
        await asyncio.sleep(0.1)
    fresh, survivor = await restart_one(workers)
    survived = await total_bounced(survivor)  # what the killed worker counted died with it
    assert 0 < survived <= 10
    mine = await ask_worker(fresh, f"{PEER_RULES}/bounce")
    assert mine == await ask_worker(survivor, f"{PEER_RULES}/bounce")
    assert [(r["id"], r["queue_names"], r["reason"]) for r in mine] == [
        (created["id"], ["dest.test"], "cleanup for the test")]
    assert await total_bounced(fresh) == 0  # the others' counts are not copied
    await send(workers.smtp_port, 20, local_part="after")
    deadline = time.monotonic() + 20
    while (await total_bounced(fresh)) + (await total_bounced(survivor)) < survived + 20:
        assert time.monotonic() < deadline, "not every message after the restart bounced"
        await asyncio.sleep(0.2)
    by_worker = [await total_bounced(fresh), await total_bounced(survivor) - survived]
    assert sum(by_worker) == 20 and by_worker[0] > 0, by_worker
    status, listed, _ = await workers.api("GET", BOUNCE)
    assert [(r["id"], r["total_bounced"]) for r in listed] == [(created["id"], survived + 20)]
    while len(after := [r for r in admin_bounces(workers)
                        if r["recipient"].startswith("after")]) < 20:  # fmt: skip
        assert time.monotonic() < deadline + 10, after
        await asyncio.sleep(0.2)
    assert len({r["recipient"] for r in after}) == 20  # each bounced once
    assert {r["response"]["content"] for r in after} == {
        "Administrator bounced with reason: cleanup for the test"}
    assert sink.messages == []
