"""Reliability sections 5-6: malformed policies and corrupt spool records."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.reliability import abuse
from bench.reliability.bench import Bench

# ---------------------------------------------------------------------------- 5 policies


async def section_policies(bench: Bench) -> None:
    from kumocore.errors import ConfigError, HookError, PolicyError
    from kumocore.node.runtime import Runtime

    for domain in abuse.BOOM_DOMAINS:
        bench.world.dns.set_records(domain, "MX", [(10, f"mx.{domain}")])
        bench.world.dns.set_records(f"mx.{domain}", "A", ["127.0.0.1"])
    server = bench.server(
        extra=abuse.FAILING_EVENTS,
        listener={
            "domains": {d: {"relay_to": True} for d in abuse.BOOM_DOMAINS},
            "data_processing_timeout": "1s",
        },
    )
    unclear = 0
    for case, options in abuse.POLICY_FAILURES.items():
        replies = abuse.policy_failure_session(server.port, **options)
        problem = abuse.policy_failure_problem(replies)
        if problem:
            unclear += 1
            bench.problem("policy", f"event failure '{case}': {problem}")
        bench.probe_ok(server, "policy", f"event failure '{case}'")
    loads = 0
    broken = {
        "py syntax error": (".py", "def kumo_init(:\n"),
        "py import error": (".py", "import does_not_exist_anywhere\n"),
        "py error in init": (".py", "from kumocore import hookimpl\n@hookimpl\n"
                             "def kumo_init(kumo):\n    raise RuntimeError('x')\n"),
        "lua syntax error": (".lua", "local kumo = require 'kumo'\nkumo.on('init', function(\n"),
        "lua error in init": (".lua", "local kumo = require 'kumo'\n"
                              "kumo.on('init', function() error('x') end)\n"),
    }  # fmt: skip
    for case, (suffix, source) in broken.items():
        path = Path(tempfile.mkdtemp(dir=bench.workdir)) / f"policy{suffix}"
        path.write_text(source)
        loads += 1
        try:
            await Runtime().load(path)
            bench.problem("policy", f"{case}: loaded without an error")
        except (ConfigError, PolicyError, HookError):
            pass
        except Exception as exc:
            bench.problem(
                "policy",
                f"{case}: {type(exc).__name__} escapes (not a PolicyError/"
                f"ConfigError, so `kumocore serve` prints a traceback): {exc}",
            )
    wrong_types = await _kumo_wrong_types(bench)
    bench.figures["policy"] = {"event_failures": len(abuse.POLICY_FAILURES),
                               "event_failures_unclear": unclear, "broken_policy_files": loads,
                               **wrong_types}  # fmt: skip


async def _kumo_wrong_types(bench: Bench) -> dict[str, int]:
    calls, unclear = await abuse.kumo_wrong_types(bench.world.dns.address)
    for line in unclear:
        bench.problem("policy", f"unclear error: {line}")
    return {"wrong_type_calls": calls, "wrong_type_calls_unclear": len(unclear)}


# ---------------------------------------------------------------------------- 6 spool


def section_spool(bench: Bench) -> None:
    server = bench.server()
    server.terminate()
    records = abuse.undecodable_records()
    ids = {name: abuse.new_id() for name in records}
    server.spool_put({ids[name]: value for name, value in records.items()})
    nobody_rcpt = f"ok.{bench.tag('nobody')}@crash.test"
    nobody = abuse.new_id()
    server.spool_put({nobody: abuse.meta_record(nobody_rcpt)})
    server.start()
    bench.probe_ok(server, "spool", "corrupt records")
    time.sleep(1.5)
    log = server.log_text()
    quarantined = sum(1 for key in ids.values() if key.decode() in log)
    server.terminate()
    stored = server.spool_records()
    for name, key in ids.items():
        if key in stored or b"quarantine:" + key not in stored:
            bench.problem("spool", f"corrupt record '{name}' not quarantined")
    from kumocore.logs.reader import iter_records

    logged = {r["recipient"] for r in iter_records(server.log_dir)
              if r["type"] in ("Bounce", "Expiration")}  # fmt: skip
    if (
        nobody not in stored
        and b"quarantine:" + nobody not in stored
        and (nobody_rcpt not in logged)
    ):
        bench.problem(
            "spool",
            "a meta record without its body was dropped without a log "
            "record or quarantine (kumocore/queue/egress.py Egress.deliver)",
        )
    bench.figures["spool"] = {
        "corrupt_records_written": len(records) + 1,
        "quarantined_and_logged": quarantined,
    }
