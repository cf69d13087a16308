"""Reliability section ``sec_delivery``: a real ``kumocore serve`` delivering to hostile MXs.

One :class:`~bench.common.hostile_mx.HostileMx` per hostile mode (over-long replies at
each step, endless multi-line replies, garbage, resets at every step, STARTTLS response
injection, one-byte-per-second replies, TLS handshake garbage or silence, a body that is
never read), each the MX of its own domain. Mail is relayed to all of them at once; for
each mode the case holds when

* every accepted message was logged as TransientFailure and none as Delivery while the MX
  was hostile (a STARTTLS injector's plaintext ``250`` must not count as a delivery);
* the MX saw a bounded number of connections per second (the path backs off);
* once the MX turns benign, every accepted message arrives (none stranded in memory).

Plus the suspension-escape case of finding 15: with ``domain`` suspended through the admin
API, messages whose ``X-Tenant`` (copied into the tenant by the policy) holds ``@``,
``:`` or ``!`` must stay queued, and arrive once the suspension is cancelled.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

from bench.common.hostile_mx import DEFERRING_MODES, HostileMx
from bench.reliability import abuse
from bench.reliability.bench import Bench

SECTION = "sec_delivery"
HOSTILE_MODES = list(DEFERRING_MODES)
#: Per hostile mode; few, since a failing path sends one message per backoff period.
MESSAGES_PER_MODE = 2
HOSTILE_SECONDS = 8.0
RECOVERY_SECONDS = 45.0
#: The most connections per second one hostile MX may see, averaged over the hostile
#: phase. Before the fix an over-long banner drew ~540/s.
MAX_CONNECTIONS_PER_SECOND = 2.0
SUSPENDED_TENANTS = ["x@evil.com", "a:b", "c!d@evil.com"]

_EXTRA = '''

SEC_PORTS: dict[str, int] = json.loads({ports!r})
SEC_PATH = dict(
    enable_tls="OpportunisticInsecure", connect_timeout="2s", banner_timeout="2s",
    ehlo_timeout="2s", mail_from_timeout="2s", rcpt_to_timeout="2s", data_timeout="2s",
    data_dot_timeout="2s", starttls_timeout="2s",
)


@hookimpl
def kumo_get_egress_path_config(domain: str, egress_source: str, site_name: str) -> Any:
    options = dict(smtp_port=CFG["sink_port"], prohibited_hosts=[], idle_timeout="1s")
    options.update(CFG["path"])
    if domain in SEC_PORTS:
        options.update(SEC_PATH, smtp_port=SEC_PORTS[domain])
    return _kumo.make_egress_path(**options)


@hookimpl
def kumo_smtp_server_message_received(message: Any, conn_meta: Any) -> None:
    tenant = message.get_first_named_header_value("X-Tenant")  # as the seed policy does
    if tenant:
        message.set_meta("tenant", tenant)
'''


def _domain(mode: str) -> str:
    return f"{mode.replace('_', '-')}.secdel.test"


def _send(port: int, recipient: str, tenant: str | None = None) -> bool:
    """Relay one message from a trusted peer; True when it got 250."""
    body = abuse.body_for(recipient)
    if tenant is not None:
        body = f"X-Tenant: {tenant}\r\n".encode() + body
    try:
        with abuse.SyncClient(port, abuse.TRUSTED, 10.0) as client:
            client.hello("secdel.test")
            return client.mail("probe@src.test", [recipient], body)[-1].code == 250
    except (OSError, ConnectionError, abuse.ProtocolViolation):
        return False


def _admin(http_port: int, method: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{http_port}/api/admin/suspend/v1", method=method,
        data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def _records(server: Any) -> list[dict[str, Any]]:
    from kumocore.logs.reader import iter_records

    try:
        return list(iter_records(server.log_dir))
    except FileNotFoundError:
        return []


async def section_sec_delivery(bench: Bench) -> None:
    mxs = {mode: await HostileMx(mode).start() for mode in HOSTILE_MODES}
    suspended_mx = await HostileMx("benign").start()
    try:
        await _run(bench, mxs, suspended_mx)
    finally:
        for mx in [*mxs.values(), suspended_mx]:
            await mx.stop()


async def _run(bench: Bench, mxs: dict[str, HostileMx], suspended_mx: HostileMx) -> None:
    ports = {_domain(mode): mx.port for mode, mx in mxs.items()}
    suspended_domain = "suspended.secdel.test"
    ports[suspended_domain] = suspended_mx.port
    for domain in ports:
        bench.world.dns.set_records(domain, "MX", [(10, f"mx.{domain}")])
        bench.world.dns.set_records(f"mx.{domain}", "A", ["127.0.0.1"])
    from bench.common.world import free_port

    http_port = free_port()
    server = await asyncio.to_thread(
        bench.server, http_port=http_port, extra=_EXTRA.format(ports=json.dumps(ports)))
    rule = await asyncio.to_thread(_admin, http_port, "POST", {
        "domain": suspended_domain, "reason": "bench: suspension escape", "duration": "10m"})

    tag = bench.tag("secdel")
    wanted = {mode: [f"ok.{tag}-{n}@{_domain(mode)}" for n in range(MESSAGES_PER_MODE)]
              for mode in HOSTILE_MODES}  # fmt: skip
    started = time.monotonic()
    flat = [r for rs in wanted.values() for r in rs]
    sent = await asyncio.gather(*(asyncio.to_thread(_send, server.port, r) for r in flat))
    refused = {r for r, ok in zip(flat, sent, strict=True) if not ok}
    held_rcpts = [f"ok.{tag}-t{n}@{suspended_domain}" for n in range(len(SUSPENDED_TENANTS))]
    suspended_ok = await asyncio.gather(*(
        asyncio.to_thread(_send, server.port, r, t)
        for r, t in zip(held_rcpts, SUSPENDED_TENANTS, strict=True)))  # fmt: skip
    await asyncio.sleep(max(0.0, HOSTILE_SECONDS - (time.monotonic() - started)))
    hostile_seconds = time.monotonic() - started
    rates = {mode: mx.connections_since(started) / hostile_seconds for mode, mx in mxs.items()}
    escaped = len(suspended_mx.messages)
    await asyncio.sleep(1.5)  # let the local logs flush the last TransientFailures
    records = await asyncio.to_thread(_records, server)

    for mx in mxs.values():
        mx.mode = "benign"
    await asyncio.to_thread(_admin, http_port, "DELETE", {"id": rule["id"]})
    accepted = {mode: [r for r in rs if r not in refused] for mode, rs in wanted.items()}
    all_recipients = [r for rs in accepted.values() for r in rs]
    deadline = time.monotonic() + RECOVERY_SECONDS
    while time.monotonic() < deadline:
        got = {m.recipient for mx in [*mxs.values(), suspended_mx] for m in mx.messages}
        if all(r in got for r in [*all_recipients, *held_rcpts]):
            break
        await asyncio.sleep(0.25)
    got = {m.recipient for mx in [*mxs.values(), suspended_mx] for m in mx.messages}
    benign_at = started + hostile_seconds
    recovery = {mode: round(max((m.at for m in mx.messages), default=benign_at) - benign_at, 1)
                for mode, mx in [*mxs.items(), ("suspended", suspended_mx)]}  # fmt: skip

    transient = {r["recipient"] for r in records if r["type"] == "TransientFailure"}
    delivered_early = {r["recipient"] for r in records if r["type"] == "Delivery"}
    log = server.log_text()
    tracebacks = log.count("Traceback")
    figures: dict[str, Any] = {
        "hostile_seconds": round(hostile_seconds, 1),
        "recovery_seconds": recovery,
        "tracebacks": tracebacks,
        "connections_per_second": {m: round(r, 2) for m, r in rates.items()},
    }
    lost = 0
    for mode, recipients in accepted.items():
        missing = [r for r in recipients if r not in got]
        lost += len(missing)
        problems = [f"{len(wanted[mode]) - len(recipients)} not accepted"] if len(
            recipients) < len(wanted[mode]) else []
        if any(r not in transient for r in recipients):
            problems.append("not every message was logged as TransientFailure")
        if any(r in delivered_early for r in recipients):
            problems.append("logged as Delivery while the MX was hostile")
        if rates[mode] > MAX_CONNECTIONS_PER_SECOND:
            problems.append(f"{rates[mode]:.1f} connections/s")
        if missing:
            problems.append(f"{len(missing)} not delivered once the MX was benign")
        bench.hostile(SECTION, f"hostile MX: {mode}", not problems, "; ".join(problems))
    held_missing = [r for r in held_rcpts if r not in got]
    lost += len(held_missing)
    bench.hostile(
        SECTION, "suspension on a domain holds tenants with @ : !",
        all(suspended_ok) and escaped == 0 and not held_missing,
        f"accepted {sum(suspended_ok)}/{len(held_rcpts)}, {escaped} delivered while "
        f"suspended, {len(held_missing)} not delivered after the suspension was cancelled")
    bench.hostile(SECTION, "no traceback from hostile MXs", tracebacks == 0,
                  f"{tracebacks} tracebacks in the server log")  # fmt: skip
    figures["delivered_while_suspended"] = escaped
    bench.lost[SECTION] = lost
    bench.figures[SECTION] = figures
