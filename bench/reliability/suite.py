"""The reliability bench (issue 9): ``python -m bench.reliability --mode short|full``.

``make reliability-short`` (CI, under 4 minutes on 2 cores) and ``make reliability`` run
the same sections with different sizes, against real ``kumocore serve`` processes on
loopback (see :mod:`bench.reliability.crash` for the harness):

1. crash — kill -9 under load at random moments, restart, account for every 250;
2. relay abuse and SMTP smuggling from untrusted / trusted peers;
3. fuzzed SMTP sessions (hypothesis), each followed by a probe transaction;
4. HTTP: schemathesis against ``/api-docs/openapi.json``, garbage bodies, header injection;
5. malformed policies: failing events, broken policy files, wrong types to ``kumo.*``,
   malformed bounce rules;
6. corrupt spool records written into a stopped server's RocksDB meta spool;
7. limits: connection flood, idle and trickling clients, memory with many connections,
   with half-sent DATA, and with a stuck log sink;
8. Redis killed mid-run, DNS down and SERVFAIL;
9. sec_smtp — one hostile SMTP peer: abandoned TLS handshakes, refused-command floods,
   pipelining stalls, junk commands, per-peer and descriptor caps, unparsable headers,
   AUTH guessing (:mod:`bench.reliability.sec_smtp`).
9. full disks and hostile files (:mod:`bench.reliability.sec_disk`).
9. ``sec_http``: slowloris/silent/flooding HTTP clients, clients that never read their
   responses, cross-site POSTs, bad characters, template abuse, Basic-auth guessing, a
   1 MiB x N inject vs SMTP latency
   (:mod:`bench.reliability.sec_http`).
9. policy I/O: hung HTTP calls, MIME bombs, garbage RBL lookups, failing tasks, large
   conformance fixes (:mod:`bench.reliability.policy_io`).
   AUTH guessing (:mod:`bench.reliability.sec_smtp`);
10. status — the status page: untrusted peers, path traversal, event-stream clients that
   never read (:mod:`bench.reliability.status`).
9. ``loghooks``: a webhook log hook whose target is down (kill -9 meanwhile) or failing,
   and a failing ``should_enqueue_log_record`` (:mod:`bench.reliability.loghooks`).

It prints each section's figures, then a JSON summary, ``problems: N`` with one line per
problem, and last ``lost: N`` — the messages that got 250 and were neither delivered nor
logged as bounced/expired. The exit status is 1 when N > 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.reliability.bench import MODES, Bench, Mode, say
from bench.reliability.crash import World, raise_nofile
from bench.reliability.faults import section_crash, section_faults
from bench.reliability.helpers import section_helpers
from bench.reliability.hostile import section_http, section_relay, section_smtp_fuzz
from bench.reliability.limits import section_limits
from bench.reliability.loghooks import section_loghooks
from bench.reliability.lua_reload import section_lua_reload
from bench.reliability.malformed import section_policies, section_spool
from bench.reliability.policy_io import section_policy_io
from bench.reliability.proxy import section_proxy
from bench.reliability.report import headline
from bench.reliability.sec_delivery import section_sec_delivery
from bench.reliability.sec_disk import section_sec_disk
from bench.reliability.sec_http import section_sec_http
from bench.reliability.sec_memory import section_sec_memory
from bench.reliability.sec_routing import section_sec_routing
from bench.reliability.sec_smtp import section_sec_smtp
from bench.reliability.status import section_status
from bench.reliability.tsa import section_tsa

__all__ = [
    "MODES",
    "SECTIONS",
    "Bench",
    "Mode",
    "headline",
    "main",
    "run",
    "say",
    "section_crash",
    "section_faults",
    "section_helpers",
    "section_http",
    "section_limits",
    "section_loghooks",
    "section_lua_reload",
    "section_policies",
    "section_policy_io",
    "section_proxy",
    "section_relay",
    "section_sec_delivery",
    "section_sec_disk",
    "section_sec_http",
    "section_sec_memory",
    "section_sec_smtp",
    "section_smtp_fuzz",
    "section_spool",
    "section_status",
    "section_tsa",
]


# ---------------------------------------------------------------------------- main

SECTIONS: list[tuple[str, Callable[[Bench], Any]]] = [
    ("crash", section_crash),
    ("relay", section_relay),
    ("smtp_fuzz", section_smtp_fuzz),
    ("http", section_http),
    ("sec_http", section_sec_http),
    ("policy", section_policies),
    ("helpers", section_helpers),
    ("spool", section_spool),
    ("limits", section_limits),
    ("faults", section_faults),
    ("sec_smtp", section_sec_smtp),
    ("sec_delivery", section_sec_delivery),
    ("lua_reload", section_lua_reload),
    ("sec_disk", section_sec_disk),
    ("policy_io", section_policy_io),
    ("sec_memory", section_sec_memory),
    ("status", section_status),
    ("sec_routing", section_sec_routing),
    ("proxy", section_proxy),
    ("tsa", section_tsa),
    ("loghooks", section_loghooks),
]


async def run(mode_name: str, only: list[str] | None = None) -> Bench:
    raise_nofile()
    mode = MODES[mode_name]
    workdir = Path(tempfile.mkdtemp(prefix="kumocore-reliability-"))
    with World() as world:
        bench = Bench(mode, world, workdir)
        for name, section in SECTIONS:
            if only and name not in only:
                continue
            say(f"== {name}")
            started = time.monotonic()
            try:
                result = section(bench)
                if asyncio.iscoroutine(result):
                    await result
            except Exception as exc:
                bench.problem(name, f"section crashed: {exc!r}\n{traceback.format_exc()}")
            finally:
                bench.stop_servers()
            seconds = time.monotonic() - started
            bench.figures.setdefault(name, {})["section_seconds"] = round(seconds, 1)
            say(json.dumps(bench.figures[name], indent=1, default=str))
    with contextlib.suppress(OSError):
        import shutil

        shutil.rmtree(workdir)
    return bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reliability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mode", choices=sorted(MODES), default="short")
    parser.add_argument(
        "--only",
        action="append",
        choices=[n for n, _ in SECTIONS],
        help="run only this section (repeatable)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    started = time.monotonic()
    bench = asyncio.run(run(args.mode, args.only))
    lost = sum(bench.lost.values())
    say("== summary")
    for line in headline(bench):
        say(line)
    say(f"seconds: {time.monotonic() - started:.0f} (mode {args.mode})")
    say(f"problems: {len(bench.problems)}")
    for problem in bench.problems:
        say(f"  - {problem}")
    say(f"lost: {lost} ({', '.join(f'{k} {v}' for k, v in bench.lost.items()) or 'none'})")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
