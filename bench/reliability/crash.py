"""Crash safety: kill -9 kumocore under load, restart it, account for every message.

The pieces are reused by the rest of the reliability bench and by ``tests/reliability``:

* :class:`World` — the test DNS server (``bench/common/dns_server.py``) and a recording
  SMTP sink (``bench/common/sink.py``, run on its own thread) that play the Internet;
* :class:`KumoServer` — a real ``kumocore serve`` process running a generated Python
  policy (spools and local logs in a temp dir: the crash rounds run an LMDB ``data`` and a
  RocksDB ``meta`` spool, as the performance bench does; an ESMTP listener on a free port,
  egress to the sink, the resolver pointed at the test DNS server); it can be started,
  killed with SIGKILL, restarted on the same port and spool, and stopped gracefully;
* :func:`load_worker` — a client that sends one uniquely addressed message after another
  and writes every reply into a :class:`Ledger`;
* :func:`run_crash_rounds` — the crash experiment itself (issue 9, part 1).

A message counts as *accepted* once the client read ``250`` after the final dot. After
the last restart every accepted message must be delivered at the sink or logged as
``Bounce``/``Expiration`` in the local logs; ``lost`` counts those that are neither (the
figure must be 0) and ``duplicated`` the extra deliveries (at-least-once allows them).
Each message is identified by its recipient (``<kind>.c<n>@crash.test``), which the sink
records; recipients containing ``permfail`` are refused by the sink (550, so a Bounce
record is expected) and ``tempfail-once`` ones are refused once (a retry from the spool).

Run it alone with ``python -m bench.reliability.crash --rounds 20``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common.server import KumoServer, banner
from bench.common.server_policy import ServerSpec, render_policy
from bench.common.world import (
    CRASH_DOMAIN,
    FAULT_DOMAIN,
    FINAL_TYPES,
    FOREIGN_DOMAIN,
    NOFILE,
    RELAY_DOMAIN,
    REPO,
    ThreadedSink,
    World,
    free_port,
    raise_nofile,
    zones,
)
from bench.reliability.crash_accounting import (
    Accounting,
    LogWatcher,
    account,
    wait_accounted,
    wait_drained,
)
from bench.reliability.crash_load import (
    Ledger,
    RecipientMaker,
    inject_worker,
    load_worker,
    message_body,
    transaction,
)

__all__ = [
    "CRASH_DOMAIN",
    "FAULT_DOMAIN",
    "FINAL_TYPES",
    "FOREIGN_DOMAIN",
    "NOFILE",
    "RELAY_DOMAIN",
    "REPO",
    "Accounting",
    "CrashReport",
    "KumoServer",
    "Ledger",
    "LogWatcher",
    "RecipientMaker",
    "ServerSpec",
    "ThreadedSink",
    "World",
    "account",
    "banner",
    "free_port",
    "inject_worker",
    "load_worker",
    "main",
    "message_body",
    "raise_nofile",
    "render_policy",
    "run_crash_rounds",
    "transaction",
    "wait_accounted",
    "zones",
]


# ---------------------------------------------------------------------------- experiment


@dataclass
class CrashReport:
    rounds: int = 0
    kills: int = 0
    seconds: float = 0.0
    restart_seconds: list[float] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)
    accounting: Accounting | None = None
    clean_exit_code: int | None = None
    record_types: dict[str, int] = field(default_factory=dict)
    lost_examples: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return len(self.accounting.lost) if self.accounting else 0

    def summary(self) -> dict[str, Any]:
        ledger = self.ledger
        restart = sorted(self.restart_seconds)
        return {
            "rounds": self.rounds,
            "kills": self.kills,
            "seconds": round(self.seconds, 1),
            "transactions": ledger.transactions,
            "refused": len(ledger.refused),
            "accepted_via_http_inject": sum(v == "200 inject" for v in ledger.accepted.values()),
            "unanswered_at_kill": len(ledger.unanswered),
            "restart_p50_s": round(restart[len(restart) // 2], 2) if restart else None,
            "restart_max_s": round(restart[-1], 2) if restart else None,
            "graceful_exit_code": self.clean_exit_code,
            **(self.accounting.to_dict() if self.accounting else {}),
            "lost_by_kind": dict(
                collections.Counter(r.split(".", 1)[0] for r in self.accounting.lost)
                if self.accounting
                else {}
            ),
            "lost_examples": self.lost_examples,
        }


async def run_crash_rounds(
    *,
    rounds: int = 20,
    workers: int = 8,
    min_up: float = 0.3,
    max_up: float = 1.5,
    settle_timeout: float = 60.0,
    seed: int = 9,
    permfail: float = 0.1,
    tempfail: float = 0.1,
    http_workers: int = 2,
    workdir: Path | None = None,
    keep: bool = False,
    progress: Callable[[str], None] | None = None,
) -> CrashReport:
    """Kill kumocore with SIGKILL at random moments under load, ``rounds`` times."""
    raise_nofile()
    rng = random.Random(seed)
    report = CrashReport()
    started = time.monotonic()
    tmp = Path(workdir or tempfile.mkdtemp(prefix="kumocore-crash-"))
    try:
        with World() as world:
            spec = ServerSpec(
                dns=world.dns.address,
                sink_port=world.sink.port,
                http_port=free_port() if http_workers else None,
                # both spools in LMDB at one path, as the performance bench runs them
                spool_kind="LMDB", data_kind="LMDB", meta_dir="data",
            )
            server = KumoServer(spec, tmp)
            logs = LogWatcher(server.log_dir)
            make = RecipientMaker(permfail=permfail, tempfail=tempfail, seed=seed)
            for round_no in range(rounds):
                server.spawn()
                report.restart_seconds.append(await asyncio.to_thread(server.wait_ready))
                stop = asyncio.Event()
                tasks = [
                    asyncio.create_task(load_worker(server.port, report.ledger, make, stop))
                    for _ in range(workers)
                ]
                if spec.http_port:
                    tasks += [
                        asyncio.create_task(
                            inject_worker(spec.http_port, report.ledger, make, stop)
                        )
                        for _ in range(http_workers)
                    ]
                await asyncio.sleep(rng.uniform(min_up, max_up))
                server.kill()
                stop.set()
                await asyncio.wait(tasks, timeout=15)
                report.rounds = round_no + 1
                if progress:
                    progress(
                        f"round {round_no + 1}/{rounds}: {len(report.ledger.accepted)} "
                        f"accepted so far, sink has {world.sink.count()}"
                    )
            server.start()
            report.accounting = await wait_accounted(
                report.ledger, world.sink, logs, settle_timeout
            )
            if spec.http_port is not None:  # and what the ledger never saw (see there)
                await wait_drained(spec.http_port, 15.0)
            report.clean_exit_code = server.terminate()
            report.accounting = account(report.ledger, world.sink, logs)
            report.accounting.still_spooled = len(server.spooled_ids())
            report.kills = server.kills
            report.record_types = dict(logs.types)
            report.lost_examples = report.accounting.lost[:5]
    finally:
        report.seconds = time.monotonic() - started
        if not keep and workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return report


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability.crash", description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args(argv)
    report = asyncio.run(
        run_crash_rounds(rounds=args.rounds, workers=args.workers, seed=args.seed, progress=print)
    )
    print(json.dumps(report.summary(), indent=2))
    print(f"lost: {report.lost}")
    return 1 if report.lost else 0


if __name__ == "__main__":
    sys.exit(main())
