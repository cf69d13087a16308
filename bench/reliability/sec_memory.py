"""Reliability section sec_memory: big bodies, big reports and big header blocks.

Each case attacks a real ``kumocore serve`` over SMTP and measures what it costs:

* 200 recipients x a 5 MiB body: the server's RSS growth (one shared body, not 200);
* a 20 MiB DSN to a ``log_oob`` domain, 5 recipients: the longest NOOP round trip another
  client sees meanwhile (parsed once, on a thread);
* a 10 MiB header-only body to 200 recipients under a policy reading ``X-Tenant``: the
  reply (``552 5.3.4``, the header block limit) and the stall another client sees;
* 20 connections each holding 3 MiB of unfinished DATA, listener budget 12 MiB: RSS
  growth (``max_data_buffered``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.common.client import UNTRUSTED, SyncClient
from bench.common.world import RELAY_DOMAIN, free_port
from bench.reliability import abuse
from bench.reliability.bench import Bench

SECTION = "sec_memory"
MIB = 1024 * 1024
BOUNCE_DOMAIN = "bounce.rel.test"

_TENANT_POLICY = '''

@hookimpl
def kumo_smtp_server_message_received(message, conn_meta):
    # The seed policy's habit: the tenant comes from a header of every message.
    tenant = message.get_first_named_header_value("X-Tenant")
    if tenant:
        message.set_meta("tenant", tenant)
'''


@contextlib.contextmanager
def _sampling(fn: Callable[[], float], every: float = 0.02) -> Iterator[list[float]]:
    """Call ``fn`` in a thread until the block ends; the samples taken."""
    samples: list[float] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            samples.append(fn())
            stop.wait(every)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(10)


def _noop_timer(port: int) -> tuple[SyncClient, Callable[[], float]]:
    """A client whose every call times one NOOP round trip (what any client would wait)."""
    client = SyncClient(port, timeout=30)
    client.hello("bystander.test")

    def once() -> float:
        started = time.monotonic()
        client.command("NOOP")
        return time.monotonic() - started

    return client, once


def _body(size: int, headers: str = "Subject: big\r\n") -> bytes:
    line = b"z" * 76 + b"\r\n"
    return (f"From: <big@src.test>\r\n{headers}\r\n").encode() + line * (size // len(line))


def _dsn(size: int) -> bytes:
    filler = ("X-Filler: " + "f" * 68 + "\r\n") * (size // 80)
    return (
        "From: <mailer-daemon@mx.remote.test>\r\nTo: <bounce@bounce.rel.test>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.remote.test\r\n\r\n"
        "Final-Recipient: rfc822; gone@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
        "--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n" + filler +
        "Subject: the original\r\n\r\n--b1--\r\n").encode()


async def section_sec_memory(bench: Bench) -> None:
    figures: dict[str, Any] = {}
    server = bench.server(
        listener={
            "max_message_size": "32 MiB",
            "max_recipients_per_message": 1024,
            "domains": {RELAY_DOMAIN: {"relay_to": True},
                        BOUNCE_DOMAIN: {"log_oob": "LogThenDrop"}},
        },
        # Nothing is delivered (a closed port, retried after an hour): RSS is reception's.
        queue={"retry_interval": "1h", "max_retry_interval": "2h"},
        path={"smtp_port": free_port()},
        extra=_TENANT_POLICY,
    )
    figures["shared_body"] = _shared_body(bench, server.port, server.rss_kib)
    figures["large_dsn"] = _large_dsn(bench, server.port)
    figures["header_only"] = _header_only(bench, server.port)
    bench.probe_ok(server, SECTION, "big bodies, reports and header blocks")
    figures["data_budget"] = _data_budget(bench)
    bench.figures[SECTION] = figures


def _shared_body(bench: Bench, port: int, rss_kib: Callable[[], int]) -> dict[str, Any]:
    body = _body(5 * MIB, "Subject: big\r\nX-Tenant: blue\r\n")
    recipients = [f"r{n}.{bench.tag('share')}@{RELAY_DOMAIN}" for n in range(200)]
    before = rss_kib()
    with _sampling(lambda: float(rss_kib())) as samples, SyncClient(port, timeout=60) as client:
        client.hello("many.test")
        final = client.mail("big@src.test", recipients, body)[-1]
    time.sleep(0.5)
    after = rss_kib()
    peak_growth = (max([*samples, after]) - before) / 1024
    growth = (after - before) / 1024
    bench.hostile(
        SECTION, "200 recipients x 5 MiB body: one shared body",
        final.code == 250 and peak_growth < 4 * 5, f"{final}; peak growth {peak_growth:.0f} MiB")
    return {"reply": str(final)[:60], "body_mib": 5, "recipients": 200,
            "rss_growth_peak_mib": round(peak_growth, 1), "rss_growth_after_mib": round(growth, 1)}


def _large_dsn(bench: Bench, port: int) -> dict[str, Any]:
    body = _dsn(20 * MIB)
    recipients = [f"bounce{n}@{BOUNCE_DOMAIN}" for n in range(5)]
    bystander, noop = _noop_timer(port)
    with bystander, _sampling(noop, every=0.005) as waits, \
            SyncClient(port, UNTRUSTED, timeout=60) as client:
        client.hello("mx.remote.test")
        started = time.monotonic()
        final = client.mail("", recipients, body)[-1]
        took = time.monotonic() - started
    worst = max(waits, default=0.0)
    bench.hostile(SECTION, "20 MiB DSN to a log_oob domain, 5 recipients: no stall",
                  final.code == 250 and worst < 0.1, f"{final}; worst NOOP {worst * 1000:.0f} ms")
    return {"reply": str(final)[:60], "dsn_mib": 20, "recipients": 5,
            "transaction_s": round(took, 2), "worst_noop_ms": round(worst * 1000, 1),
            "noops": len(waits)}


def _header_only(bench: Bench, port: int) -> dict[str, Any]:
    headers = b"X-Tenant: blue\r\n" + b"".join(
        b"X-H%07d: v\r\n" % n for n in range(10 * MIB // 14))  # 10 MiB, no body at all
    recipients = [f"h{n}.{bench.tag('hdr')}@{RELAY_DOMAIN}" for n in range(200)]
    bystander, noop = _noop_timer(port)
    with bystander, _sampling(noop, every=0.005) as waits, SyncClient(port, timeout=60) as client:
        client.hello("headers.test")
        started = time.monotonic()
        final = client.mail("big@src.test", recipients, headers)[-1]
        took = time.monotonic() - started
    worst = max(waits, default=0.0)
    bench.hostile(SECTION, "10 MiB header-only body, 200 recipients, X-Tenant policy",
                  str(final).startswith("552 5.3.4") and worst < 0.1,
                  f"{final}; worst NOOP {worst * 1000:.0f} ms")
    return {"reply": str(final)[:60], "transaction_s": round(took, 2),
            "worst_noop_ms": round(worst * 1000, 1)}


def _data_budget(bench: Bench) -> dict[str, Any]:
    server = bench.server(listener={"client_timeout": "60s", "max_data_buffered": "12 MiB",
                                    "max_message_size": "8 MiB"})
    abuse.probe(server.port, f"ok.{bench.tag('budget')}@crash.test")
    before = server.rss_kib()
    start = (b"EHLO big.test\r\nMAIL FROM:<a@src.test>\r\n"
             b"RCPT TO:<ok.big@" + RELAY_DOMAIN.encode() + b">\r\nDATA\r\n")
    chunk = (b"y" * 998 + b"\r\n") * 1024
    with abuse.hold_connections(server.port, 20) as socks:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.sendall(start + chunk * 3)
        time.sleep(1.0)
        growth = (server.rss_kib() - before) / 1024
        probe_ok = bench.probe_ok(server, SECTION, "20 half-sent 3 MiB messages")
    bench.hostile(SECTION, "20 x 3 MiB unfinished DATA, budget 12 MiB",
                  growth < 30 and probe_ok, f"RSS grew {growth:.0f} MiB")
    return {"connections": 20, "mib_each": 3, "budget_mib": 12,
            "rss_growth_mib": round(growth, 1), "probe_ok": probe_ok}
