"""Reliability section ``sec_routing``: outbound AUTH and TLS against hostile smarthosts.

A real ``kumocore serve`` relays mail for four domains, each routed by an ``mx_list`` to
its own AUTH-requiring smarthost (aiosmtpd, :class:`~bench.common.auth_mx.AuthMx`) with
``smtp_auth_plain_username`` set. Each smarthost misbehaves in one way an attacker on the
path could arrange; a case holds when the credential is never handed over where it must
not be, nothing is delivered, every message is logged as a TransientFailure (kept for a
retry, not lost), and a stalled AUTH is bounded by ``auth_timeout``:

* ``no_starttls`` — STARTTLS stripped: the credential must not go out in clear text;
* ``untrusted_cert`` — a certificate kumocore does not trust, ``Opportunistic``: the
  handshake fails and there is no fallback to plain text;
* ``insecure_tls`` — ``OpportunisticInsecure``: encrypted, but the peer is unverified, so
  the credential is withheld;
* ``silent_auth`` — the server never answers AUTH: the attempt ends after ``auth_timeout``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common.auth_mx import AuthMx
from bench.reliability import abuse
from bench.reliability.bench import Bench

SECTION = "sec_routing"
MESSAGES_PER_CASE = 2
WAIT_SECONDS = 20.0
AUTH_TIMEOUT = 2.0

CASES: dict[str, dict[str, Any]] = {
    "no_starttls": {"mx": {"starttls": False}, "path": {"enable_tls": "Opportunistic"}},
    "untrusted_cert": {"mx": {}, "path": {"enable_tls": "Opportunistic"}},
    "insecure_tls": {"mx": {}, "path": {"enable_tls": "OpportunisticInsecure"}},
    "silent_auth": {"mx": {"silent": True}, "path": {
        "enable_tls": "OpportunisticInsecure",
        "allow_smtp_auth_plain_without_valid_certificate": True}},
}

_EXTRA = '''

ROUTES: dict[str, Any] = json.loads({routes!r})


@hookimpl
def kumo_get_egress_path_config(domain: str, egress_source: str, site_name: str) -> Any:
    options = dict(smtp_port=CFG["sink_port"], prohibited_hosts=[], idle_timeout="1s")
    options.update(CFG["path"])
    if domain in ROUTES:
        options.update(ROUTES[domain]["path"], smtp_auth_plain_username="alice",
                       smtp_auth_plain_password=dict(key_data="s3cret"),
                       auth_timeout="{auth_timeout}s", starttls_timeout="2s")
    return _kumo.make_egress_path(**options)


@hookimpl
def kumo_get_queue_config(domain: str, tenant: Any, campaign: Any) -> Any:
    options = dict(retry_interval="1m", max_retry_interval="2m")
    options.update(CFG["queue"])
    if domain in ROUTES:
        options["protocol"] = dict(smtp=dict(mx_list=[ROUTES[domain]["mx"]]))
    return _kumo.make_queue_config(**options)
'''


def _domain(case: str) -> str:
    return f"{case.replace('_', '-')}.secroute.test"


def _send(port: int, recipient: str) -> bool:
    try:
        with abuse.SyncClient(port, abuse.TRUSTED, 10.0) as client:
            client.hello("secroute.test")
            body = abuse.body_for(recipient)
            return client.mail("probe@src.test", [recipient], body)[-1].code == 250
    except (OSError, ConnectionError, abuse.ProtocolViolation):
        return False


def _records(server: Any) -> list[dict[str, Any]]:
    from kumocore.logs.reader import iter_records

    try:
        return list(iter_records(server.log_dir))
    except FileNotFoundError:
        return []


async def section_sec_routing(bench: Bench) -> None:
    with tempfile.TemporaryDirectory(prefix="kumocore-secroute-") as tmp:
        mxs = {case: await AuthMx("127.0.0.1", "mx.auth.test", {"alice": "s3cret"},
                                  Path(tmp), **spec["mx"]).start()
               for case, spec in CASES.items()}  # fmt: skip
        try:
            await _run(bench, mxs)
        finally:
            for mx in mxs.values():
                await mx.stop()


async def _run(bench: Bench, mxs: dict[str, AuthMx]) -> None:
    routes = {_domain(case): {"path": CASES[case]["path"],
                              "mx": {"name": "mx.auth.test", "addr": f"127.0.0.1:{mx.port}"}}
              for case, mx in mxs.items()}  # fmt: skip
    server = await asyncio.to_thread(bench.server, extra=_EXTRA.format(
        routes=json.dumps(routes), auth_timeout=AUTH_TIMEOUT))
    tag = bench.tag("secroute")
    wanted = {case: [f"ok.{tag}-{n}@{_domain(case)}" for n in range(MESSAGES_PER_CASE)]
              for case in CASES}  # fmt: skip
    started = time.monotonic()
    flat = [r for rs in wanted.values() for r in rs]
    sent = await asyncio.gather(*(asyncio.to_thread(_send, server.port, r) for r in flat))
    accepted = {r for r, ok in zip(flat, sent, strict=True) if ok}
    records: list[dict[str, Any]] = []
    first_failure: dict[str, float] = {}
    deadline = started + WAIT_SECONDS
    while time.monotonic() < deadline:
        records = await asyncio.to_thread(_records, server)
        transient = {r["recipient"] for r in records if r["type"] == "TransientFailure"}
        for case, recipients in wanted.items():
            if case not in first_failure and any(r in transient for r in recipients):
                first_failure[case] = time.monotonic() - started
        if all(r in transient for r in accepted):
            break
        await asyncio.sleep(0.5)
    transient = {r["recipient"] for r in records if r["type"] == "TransientFailure"}
    delivered = {r["recipient"] for r in records if r["type"] == "Delivery"}
    figures: dict[str, Any] = {"first_transient_failure_seconds": {
        case: round(t, 1) for case, t in first_failure.items()}}
    for case, mx in mxs.items():
        recipients = wanted[case]
        problems = []
        if any(r not in accepted for r in recipients):
            problems.append("not every message was accepted")
        if any(r not in transient for r in recipients if r in accepted):
            problems.append("not every message was logged as TransientFailure")
        if mx.state.messages or any(r in delivered for r in recipients):
            problems.append("delivered")
        sent_credential = mx.state.auth_attempts
        if case != "silent_auth" and sent_credential:
            problems.append(f"credential sent: {sent_credential}")
        said = [r["response"]["content"] for r in records
                if r["type"] == "TransientFailure" and r["recipient"] in recipients]
        if case == "untrusted_cert" and not all("TLS handshake" in text for text in said):
            problems.append(f"not failed by the TLS handshake (plain-text fallback?): {said[:1]}")
        if case == "silent_auth" and first_failure.get(case, WAIT_SECONDS) > AUTH_TIMEOUT + 8:
            problems.append("a stalled AUTH was not bounded by auth_timeout")
        bench.hostile(SECTION, f"smarthost: {case}", not problems, "; ".join(problems))
    bench.figures[SECTION] = figures
