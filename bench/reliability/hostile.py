"""Reliability sections 2-4: relay abuse and smuggling, fuzzed SMTP sessions, HTTP."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from bench.reliability import abuse
from bench.reliability.bench import Bench
from bench.reliability.crash import FOREIGN_DOMAIN, free_port

# ---------------------------------------------------------------------------- 2 relay


def section_relay(bench: Bench) -> None:
    server = bench.server()
    results = abuse.run_relay_battery(server.port)
    relayed = [r.case.name for r in results if not r.case.accept and not r.refused_5xx]
    refused_good = [r.case.name for r in results if r.case.accept and not r.accepted]
    for name in relayed:
        bench.problem("relay", f"not refused with 5xx from an untrusted peer: {name}")
    for name in refused_good:
        bench.problem("relay", f"relay_to domain refused: {name}")
    smuggled = []
    for variant in abuse.SMUGGLING_VARIANTS:
        result = abuse.try_smuggling(server.port, variant, bench.tag("smug"))
        smuggled.append(result)
        if result.accepted > 1:
            bench.problem("smuggling", f"{variant}: two messages accepted")
    bench.probe_ok(server, "relay", "the battery")
    time.sleep(1.5)
    got = bench.world.sink.recipients()
    foreign = [r for r in got if r.rsplit("@", 1)[-1].rstrip(".") == FOREIGN_DOMAIN]
    arrived = [s.variant for s in smuggled if got[s.smuggled_recipient]]
    for variant in arrived:
        bench.problem("smuggling", f"{variant}: the smuggled message was delivered")
    if foreign:
        bench.problem("relay", f"delivered to the foreign domain: {foreign[:3]}")
    bench.figures["relay"] = {
        "cases": len(results), "refused_5xx": sum(r.refused_5xx for r in results),
        "relay_to_accepted": sum(r.accepted for r in results if r.case.accept),
        "delivered_to_foreign_domain": len(foreign),
        "smuggling_variants": len(smuggled),
        "smuggling_one_message": sum(s.accepted == 1 for s in smuggled),
        "smuggling_refused_5xx": sum(s.accepted == 0 for s in smuggled),
        "smuggled_messages_delivered": len(arrived),
    }  # fmt: skip


# ---------------------------------------------------------------------------- 3 SMTP fuzz


def section_smtp_fuzz(bench: Bench) -> None:
    from hypothesis import HealthCheck, given, settings

    server = bench.server(listener={"max_message_size": 64 * 1024, "client_timeout": "3s"})
    counts = {"sessions": 0, "bytes_sent": 0, "replies": 0, "failed": 0}
    legit: set[str] = set()
    failures: list[str] = []

    @settings(max_examples=bench.mode.fuzz_sessions, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(steps=abuse.smtp_sessions())
    def run(steps: list[bytes | float]) -> None:
        tag = bench.tag("fz")
        counts["sessions"] += 1
        played = abuse.play(server.port, steps, tag)
        counts["bytes_sent"] += len(played.sent)
        counts["replies"] += len(played.replies)
        legit.update(played.accepted_recipients())
        try:
            abuse.check_played(played)
        except AssertionError as exc:
            counts["failed"] += 1
            if len(failures) < 5:
                failures.append(f"{exc} after sending {played.sent[:200]!r}")
        if not server.alive:
            raise RuntimeError("kumocore died")
        if not bench.probe_ok(server, "smtp-fuzz", f"session {tag}"):
            raise RuntimeError("kumocore stopped serving")

    try:
        run()
    except RuntimeError as exc:
        bench.problem("smtp-fuzz", f"{exc}:\n{server.log_tail(1500)}")
    for failure in failures:
        bench.problem("smtp-fuzz", failure)
    time.sleep(2)
    messages = list(bench.world.sink.sink.messages)
    smuggled = {m.recipient.lower() for m in messages if m.recipient.startswith("smuggled.")}
    for recipient in smuggled - legit:
        bench.problem("smtp-fuzz", f"DATA ended at a non-CRLF.CRLF: {recipient} arrived")
    bare = re.compile(rb"(?<!\r)\n|\r(?!\n)")
    emitted_bare = [m.recipient for m in messages if bare.search(m.data)]
    for recipient in emitted_bare[:5]:
        bench.problem("smtp-fuzz", f"a message with bare CR/LF was relayed: {recipient}")
    internal = server.log_text().count("smtp session failed")
    if internal:
        bench.problem("smtp-fuzz", f"{internal} sessions ended in an internal error")
    bench.figures["smtp_fuzz"] = {
        **counts,
        "smuggled_delivered_illegitimately": len(smuggled - legit),
        "internal_errors": internal,
    }


# ---------------------------------------------------------------------------- 4 HTTP


def section_http(bench: Bench) -> None:
    import urllib.error
    import urllib.request

    server = bench.server(http_port=free_port())
    base = f"http://127.0.0.1:{server.spec.http_port}"
    figures: dict[str, Any] = {}
    try:
        report = abuse.http_fuzz(base, max_examples=bench.mode.http_examples)
    except ImportError:
        figures["schemathesis"] = "not installed (pip install schemathesis)"
    else:
        figures.update(
            schemathesis_requests=report.requests,
            server_errors=report.server_errors,
            document_mismatches=len(report.failures),
            status=report.status,
        )
        if report.server_errors:
            bench.problem("http", f"{report.server_errors} responses were 5xx: {report.status}")
        for key, example in report.failures.items():
            bench.problem("http", f"{key} ({example})")

    def post(body: bytes) -> int:
        request = urllib.request.Request(
            f"{base}/api/inject/v1",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    injected = 0
    for field_name, content in (
        ("subject", {"subject": "x\r\nX-Injected: yes"}),
        ("header", {"headers": {"X-A": "x\r\nX-Injected: yes"}}),
    ):
        rcpt = f"ok.{bench.tag('inj')}@crash.test"
        status = post(
            json.dumps(
                {
                    "envelope_sender": "a@src.test",
                    "recipients": [{"email": rcpt}],
                    "content": {"text_body": "hi", **content},
                }
            ).encode()
        )
        if status == 200 and not bench.delivered([rcpt], 10):
            data = next(m.data for m in bench.world.sink.sink.messages if m.recipient == rcpt)
            if re.search(rb"(?im)^X-Injected:", data.split(b"\r\n\r\n", 1)[0]):
                injected += 1
                bench.problem("http", f"CR/LF in {field_name} became a header line")
    garbage = [b"", b"{", b"[]", b"null", b"\x00\xff", b'{"recipients": 5}', b"{}" * 10000]
    statuses = [post(body) for body in garbage]
    if any(s >= 500 for s in statuses):
        bench.problem("http", f"garbage bodies got {statuses}")
    figures.update(header_injections=injected, garbage_bodies=len(garbage))
    bench.probe_ok(server, "http", "HTTP fuzzing")
    bench.figures["http"] = figures
