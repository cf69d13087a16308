"""Reliability section ``sec_http``: hostile HTTP clients (issue 14, findings 4 and 11-14).

Against a real ``kumocore serve`` with an HTTP listener (small caps and deadlines so the
section stays short): slowloris and silent connections, clients that never read their
responses, per-peer and per-listener
connection floods, cross-site simple POSTs / foreign Origins / DNS-rebinding Hosts, a bad
character in every header field, templates that try to grow memory through Python
methods or produce huge output, Basic-auth guessing, and a 1 MiB x N inject while an SMTP
client measures how long its transactions take. Each attack is a ``bench.hostile`` case.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import threading
import time
from typing import Any

from bench.reliability import abuse
from bench.reliability.bench import Bench
from bench.reliability.crash import KumoServer, free_port

S = "sec_http"
LIMITS = {"header_timeout": "2s", "keepalive_timeout": "3s", "request_body_timeout": "2s",
          "response_write_timeout": "2s",
          "max_connections": 300, "max_connections_per_peer": 40, "auth_failure_limit": 5,
          "max_rendered_size": "1 MiB"}
NASTY = ["\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def request(port: int, method: str, path: str, body: bytes | None = None, *,
            headers: dict[str, str] | None = None, source: str = "127.0.0.1",
            timeout: float = 60.0) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def inject(port: int, body: dict[str, Any], **kwargs: Any) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    status, _, raw = request(port, "POST", "/api/inject/v1", json.dumps(body).encode(),
                             headers=headers, **kwargs)
    with contextlib.suppress(ValueError):
        return status, json.loads(raw)
    return status, raw


def sources(count: int) -> list[str]:
    return [f"127.0.{20 + n // 200}.{2 + n % 200}" for n in range(count)]


def section_sec_http(bench: Bench) -> None:
    figures: dict[str, Any] = {}
    server = bench.server(http_port=free_port(), http_listener=LIMITS)
    port = server.spec.http_port
    assert port is not None
    figures["slow_and_silent"] = _slow_and_silent(bench, server, port)
    figures["slow_readers"] = _slow_readers(bench, server, port)
    figures["connection_caps"] = _connection_caps(bench, server, port)
    figures["cross_site"] = _cross_site(bench, port)
    figures["nasty_characters"] = _nasty_characters(bench, port)
    figures["templates"] = _templates(bench, server, port)
    figures["basic_auth_guessing"] = _basic_auth(bench, port)
    bench.stop_servers()
    figures["large_inject"] = _large_inject(bench)
    bench.figures[S] = figures


# ---------------------------------------------------------------------------- finding 4


def _slow_and_silent(bench: Bench, server: KumoServer, port: int) -> dict[str, Any]:
    """Slowloris (one header byte per second) and silent clients, past their deadlines."""
    count = 60 if bench.mode.idle_connections <= 1000 else 200
    slow = _open(port, sources(count))
    silent = _open(port, sources(count)[::-1])
    payload = b"GET /api/check-liveness/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 64
    answered_408 = 0
    started = time.monotonic()
    for index in range(8):  # 8 s: past header_timeout (2 s) and keepalive_timeout (3 s)
        for sock in list(slow):
            with contextlib.suppress(OSError):
                sock.send(payload[index:index + 1])
        time.sleep(1.0)
    for sock in slow:  # (a client that kept sending after the close may have lost it to RST)
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            answered_408 += sock.recv(200, socket.MSG_PEEK).startswith(b"HTTP/1.1 408")
    open_slow = [s for s in slow if not _closed(s)]
    open_silent = [s for s in silent if not _closed(s)]
    probe = bench.probe_ok(server, S, f"{count} slowloris + {count} silent HTTP clients")
    for sock in slow + silent:
        sock.close()
    bench.hostile(S, "slowloris HTTP headers closed after header_timeout", not open_slow,
                  f"{len(open_slow)}/{count} still open after 8 s")
    bench.hostile(S, "silent HTTP connections closed after keepalive_timeout", not open_silent,
                  f"{len(open_silent)}/{count} still open after 8 s")
    return {"slowloris_clients": count, "silent_clients": count,
            "slowloris_open_after_8s": len(open_slow), "slowloris_answered_408": answered_408,
            "silent_open_after_8s": len(open_silent), "smtp_probe_ok": probe,
            "seconds": round(time.monotonic() - started, 1)}  # fmt: skip


def _slow_readers(bench: Bench, server: KumoServer, port: int) -> dict[str, Any]:
    """Clients that ask for about 7 MB of answers each (the OpenAPI document, which anyone
    may fetch, 100 times in one pipelined write) and never read them."""
    count = 20
    ask = b"GET /api-docs/openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 100
    readers = []
    for source in sources(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind((source, 0))
        sock.settimeout(5)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(ask)
        except OSError:  # not what this attack is about: counted, not waited for
            sock.close()
            continue
        readers.append(sock)
    started = time.monotonic()
    probe = bench.probe_ok(server, S, f"{count} HTTP clients not reading their responses")
    while time.monotonic() < started + 8 and not all(map(_reset, readers)):
        time.sleep(0.25)
    still_open = [sock for sock in readers if not _reset(sock)]
    seconds = time.monotonic() - started
    for sock in readers:
        sock.close()
    bench.hostile(S, "HTTP clients not reading their responses aborted after "
                  "response_write_timeout", bool(readers) and not still_open,
                  f"{len(still_open)}/{len(readers)} still open after {seconds:.0f} s "
                  f"({count - len(readers)} could not connect and send)")  # fmt: skip
    return {"clients": len(readers), "could_not_send": count - len(readers),
            "open_after": len(still_open), "seconds": round(seconds, 1),
            "smtp_probe_ok": probe}


def _reset(sock: socket.socket) -> bool:
    """The server dropped the connection (TCP state CLOSE), whatever is left unread."""
    state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
    return state == TCP_CLOSE


#: ``tcpi_state`` of a connection that is gone (Linux ``TCP_CLOSE``).
TCP_CLOSE = 7


def _open(port: int, addresses: list[str]) -> list[socket.socket]:
    socks = []
    for source in addresses:
        with contextlib.suppress(OSError):
            socks.append(socket.create_connection(("127.0.0.1", port), 5, (source, 0)))
    return socks


def _closed(sock: socket.socket) -> bool:
    """True when the server closed the connection (EOF or reset)."""
    sock.setblocking(False)
    try:
        while data := sock.recv(65536, socket.MSG_PEEK):
            if len(data) < 65536:
                sock.recv(len(data))  # consume the 408 so EOF behind it shows
                continue
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def _connection_caps(bench: Bench, server: KumoServer, port: int) -> dict[str, Any]:
    one_peer = _open(port, ["127.0.0.5"] * 60)
    refused_peer = sum(_refused_503(s) for s in one_peer)
    other_ok = request(port, "GET", "/api/check-liveness/v1", source="127.0.0.6")[0] == 200
    for sock in one_peer:
        sock.close()
    flood = _open(port, sources(350))
    refused_total = sum(_refused_503(s) for s in flood)
    probe = bench.probe_ok(server, S, "an HTTP connection flood")
    for sock in flood:
        sock.close()
    time.sleep(0.5)
    after = request(port, "GET", "/api/check-liveness/v1")[0]
    bench.hostile(S, "per-peer HTTP connection cap (40) answers 503 beyond it",
                  refused_peer >= 15 and other_ok, f"refused {refused_peer} of 60")
    bench.hostile(S, "listener HTTP connection cap (300) answers 503 beyond it",
                  refused_total >= 40 and probe and after == 200,
                  f"refused {refused_total} of 350; SMTP probe {probe}; liveness {after}")
    return {"from_one_peer": 60, "refused_per_peer_cap": refused_peer,
            "other_peer_served": other_ok, "flood": 350, "refused_listener_cap": refused_total,
            "smtp_probe_ok": probe, "liveness_after": after}  # fmt: skip


def _refused_503(sock: socket.socket) -> bool:
    sock.settimeout(0.3)
    try:
        return sock.recv(64).startswith(b"HTTP/1.1 503")
    except OSError:
        return False


# ---------------------------------------------------------------------------- finding 14

RULE = json.dumps({"domain": "crash.test", "reason": "csrf", "duration": "1h"}).encode()


def _cross_site(bench: Bench, port: int) -> dict[str, Any]:
    plain = {"Content-Type": "text/plain"}
    body = json.dumps({"envelope_sender": "a@src.test", "content": "Subject: x\n\ny",
                       "recipients": [{"email": f"ok.{bench.tag('csrf')}@crash.test"}]})
    attempts = {
        "text/plain inject": ("/api/inject/v1", body.encode(), plain, 415),
        "text/plain admin suspend": ("/api/admin/suspend/v1", RULE, plain, 415),
        "text/plain admin bounce": ("/api/admin/bounce/v1", RULE, plain, 415),
        "foreign Origin inject": ("/api/inject/v1", body.encode(), {
            "Content-Type": "application/json", "Origin": "https://evil.example"}, 403),
        "DNS-rebinding Host admin suspend": ("/api/admin/suspend/v1", RULE, {
            "Content-Type": "application/json", "Host": "rebind.evil.example:8000"}, 403),
    }
    statuses = {}
    for name, (path, data, headers, expected) in attempts.items():
        status = request(port, "POST", path, data, headers=headers)[0]
        statuses[name] = status
        bench.hostile(S, f"cross-site: {name} refused", status == expected,
                      f"got {status}, expected {expected}")
    status, _, listing = request(port, "GET", "/api/admin/suspend/v1")
    suspended = json.loads(listing) if status == 200 else None
    bench.hostile(S, "cross-site: no suspension was created", suspended == [],
                  f"suspensions: {suspended}")
    return {"statuses": statuses, "suspensions_after": suspended}


# ---------------------------------------------------------------------------- finding 13

FIELDS: list[tuple[str, ...]] = [
    ("recipients", "name"), ("recipients", "email"), ("envelope_sender",),
    ("content", "subject"), ("content", "from", "name"), ("content", "from", "email"),
    ("content", "reply_to", "name"), ("content", "headers", "X-A"),
    ("content", "attachments", "file_name"), ("content", "attachments", "content_id"),
    ("trace_headers", "header_name"), ("recipients", "substitutions", "v"),
]


def _nasty_body(path: tuple[str, ...], char: str, recipient: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "envelope_sender": "a@src.test",
        "recipients": [{"email": recipient, "name": "N", "substitutions": {"v": "1"}}],
        "content": {"subject": "s {{ v }}", "text_body": "b", "headers": {"X-A": "{{ v }}"},
                    "from": {"email": "f@src.test", "name": "F"},
                    "reply_to": {"email": "r@src.test", "name": "R"},
                    "attachments": [{"data": "x", "content_type": "text/plain",
                                     "file_name": "f.txt", "content_id": "c1"}]},
        "trace_headers": {"header_name": "X-Ref"},
    }
    node: Any = body
    for key in path[:-1]:
        node = node[key][0] if isinstance(node[key], list) else node[key]
    leaf = path[-1]
    node[leaf] = (f"a{char}b@src.test" if leaf == "email" or path == ("envelope_sender",)
                  else f"a{char}b")
    return body


def _nasty_characters(bench: Bench, port: int) -> dict[str, Any]:
    codes: dict[int, int] = {}
    server_errors = []
    for path in FIELDS:
        for char in NASTY:
            status, _ = inject(port, _nasty_body(path, char, f"ok.{bench.tag('nasty')}@crash.test"))
            codes[status] = codes.get(status, 0) + 1
            if status >= 500:
                server_errors.append(f"{'.'.join(path)} {char!r}")
    bench.hostile(S, "a line-break character in any inject field is never a 500",
                  not server_errors, f"500 for {server_errors[:5]}")
    return {"requests": len(FIELDS) * len(NASTY), "status": codes,
            "server_errors": len(server_errors)}


# ---------------------------------------------------------------------------- finding 11


def _templates(bench: Bench, server: KumoServer, port: int) -> dict[str, Any]:
    before = server.rss_kib()
    doubling = "{% for i in range(40) %}{{ l.extend(l) }}{% endfor %}{{ l|length }}"
    status, payload = inject(port, {
        "envelope_sender": "a@src.test", "substitutions": {"l": [1]},
        "recipients": [{"email": f"ok.{bench.tag('tpl')}@crash.test"}],
        "content": {"text_body": doubling}}, timeout=30)
    grown = (server.rss_kib() - before) / 1024
    failed = status == 200 and isinstance(payload, dict) and payload.get("fail_count") == 1
    bench.hostile(S, "template l.extend(l) cannot double a substitution list",
                  failed and grown < 64, f"status {status} {payload!r:.200}, RSS +{grown:.0f} MiB")
    recipient = f"ok.{bench.tag('tpl')}@crash.test"
    status, big = inject(port, {"envelope_sender": "a@src.test", "recipients": [
        {"email": recipient}], "content": {"text_body": "{{ 'x' * 2000000 }}"}})
    capped = status == 200 and isinstance(big, dict) and "max_rendered_size" in str(big)
    bench.hostile(S, "rendered output over max_rendered_size fails the recipient", capped,
                  f"status {status} {big!r:.200}")
    return {"doubling_status": status, "rss_growth_mib": round(grown, 1),
            "oversized_render_refused": capped}


# ---------------------------------------------------------------------------- auth


def _basic_auth(bench: Bench, port: int) -> dict[str, Any]:
    statuses = []
    retry_after = None
    for n in range(8):
        status, headers, _ = request(
            port, "POST", "/api/inject/v1", b"{}", source="127.0.0.7",
            headers={"Content-Type": "application/json",
                     "Authorization": "Basic " + base64.b64encode(f"u:guess{n}".encode()).decode()})
        statuses.append(status)
        retry_after = headers.get("Retry-After", retry_after)
    limited = statuses[5:] == [429, 429, 429] and retry_after is not None
    bench.hostile(S, "HTTP Basic guessing is answered 429 after auth_failure_limit", limited,
                  f"statuses {statuses}")
    return {"statuses": statuses, "retry_after": retry_after}


# ---------------------------------------------------------------------------- finding 12


def _large_inject(bench: Bench) -> dict[str, Any]:
    recipients = 100 if bench.mode.idle_connections <= 1000 else 250
    server = bench.server(http_port=free_port(), http_listener={"request_body_limit": "4 MiB"})
    port = server.spec.http_port
    assert port is not None
    abuse.probe(server.port, f"ok.{bench.tag('warm')}@crash.test")
    line = "Hello {{ email }} " + "x" * 70 + "\n"
    text = line * (1024 * 1024 // len(line))
    tag = bench.tag("big")
    body = {"envelope_sender": "a@src.test", "content": {"subject": "big", "text_body": text},
            "recipients": [{"email": f"ok.{tag}-{i}@crash.test"} for i in range(recipients)]}
    latencies: list[float] = []
    failures: list[str] = []
    done = threading.Event()

    def prober() -> None:
        while not done.is_set():
            started = time.monotonic()
            try:
                reply = abuse.probe(server.port, f"ok.{bench.tag('lat')}@crash.test", timeout=60)
                if reply.code != 250:
                    failures.append(str(reply))
            except (OSError, ConnectionError, abuse.ProtocolViolation) as exc:
                failures.append(repr(exc))
            latencies.append(time.monotonic() - started)
            time.sleep(0.1)

    before = server.rss_kib()
    thread = threading.Thread(target=prober, daemon=True)
    thread.start()
    started = time.monotonic()
    status, payload = inject(port, body, timeout=300)
    seconds = time.monotonic() - started
    done.set()
    thread.join(70)
    after = server.rss_kib()
    ok = status == 200 and isinstance(payload, dict) and payload["success_count"] == recipients
    worst = max(latencies, default=0.0)
    bench.hostile(S, f"SMTP keeps serving during a 1 MiB x {recipients} inject",
                  ok and worst < 2.0 and not failures,
                  f"inject {status}, worst SMTP transaction {worst:.2f}s, failures {failures[:2]}")
    body["recipients"] = [{"email": f"ok.{tag}-x{i}@crash.test"} for i in range(400)]
    over, refusal = inject(port, body, timeout=120)
    bench.hostile(S, "1 MiB x 400 inject over inject_generated_size_limit gets 413",
                  over == 413, f"got {over} {refusal!r:.200}")
    return {"recipients": recipients, "mib_each": 1, "status": status,
            "inject_seconds": round(seconds, 1), "smtp_transactions_during": len(latencies),
            "smtp_worst_transaction_s": round(worst, 3), "smtp_failures": len(failures),
            "rss_before_mib": round(before / 1024, 1), "rss_after_mib": round(after / 1024, 1),
            "over_budget_status": over}  # fmt: skip
