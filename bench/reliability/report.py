"""The reliability bench's summary lines."""

from __future__ import annotations

from bench.reliability.bench import Bench


def headline(bench: Bench) -> list[str]:
    f = bench.figures
    crash = f.get("crash", {})
    fuzz = f.get("smtp_fuzz", {})
    http = f.get("http", {})
    policy = f.get("policy", {})
    limits = f.get("limits", {})
    idle = limits.get("idle_connections", {})
    faults = f.get("faults", {})
    held = sum(1 for _, _, ok in bench.hostile_cases if ok)
    return [
        f"hostile cases: {len(bench.hostile_cases)} tried, {held} held",
        f"load held: {crash.get('transactions', 0)} SMTP transactions over "
        f"{crash.get('rounds', 0)} crash rounds, {idle.get('held', 0)} concurrent idle "
        f"connections at {idle.get('kib_per_connection', '?')} KiB each, "
        f"{limits.get('slow_log_sink', {}).get('msgs_per_s', '?')} msg/s with a stuck log sink",
        f"faults injected: {crash.get('kills', 0)} kill -9, "
        f"{faults.get('redis', {}).get('kills', 0)} Redis kills, DNS down + SERVFAIL, "
        f"{f.get('spool', {}).get('corrupt_records_written', 0)} corrupt spool records",
        f"inputs tried: {fuzz.get('sessions', 0)} fuzzed SMTP sessions, "
        f"{f.get('relay', {}).get('cases', 0)} relay tricks, "
        f"{f.get('relay', {}).get('smuggling_variants', 0)} smuggling variants, "
        f"{http.get('schemathesis_requests', 0)} schemathesis requests, "
        f"{policy.get('event_failures', 0) + policy.get('broken_policy_files', 0)} broken "
        f"policies, {policy.get('wrong_type_calls', 0)} wrong-type kumo.* calls",
        f"duplicated: {crash.get('duplicated', 0)} of {crash.get('accepted', 0)} accepted "
        f"(at-least-once after kill -9)",
    ]
