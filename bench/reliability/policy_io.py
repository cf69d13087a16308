"""Reliability section ``policy_io``: hostile input reaching the policy I/O functions and
message methods of issue 16 (``kumo.http``, ``kumo.dns.rbl_lookup``, ``kumo.spawn_task``,
``msg:parse_mime``, ``msg:check_fix_conformance``) through ``smtp_server_data``.

Each case is one SMTP transaction from a trusted peer whose ``X-IO`` header tells the
policy what to do; the attack holds when the reply is the expected one (a 4xx for a policy
that failed or hung, a 250 for one that coped) and a normal transaction still succeeds.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from bench.reliability import abuse
from bench.reliability.bench import Bench

#: Appended to the generated Python policy; ``{hang_port}`` is a socket that never answers.
POLICY_IO = '''

@hookimpl
async def kumo_smtp_server_data(message: Any, conn_meta: Any) -> None:
    case = message.get_first_named_header_value("X-IO")
    if case == "hang":
        client = _kumo.http.build_client(timeout="60s")
        await client.get("http://127.0.0.1:{hang_port}/never").send()
    elif case == "mime":
        message.parse_mime().get_simple_structure()
    elif case == "rbl":
        await _kumo.dns.rbl_lookup(message.get_first_named_header_value("X-IP"), "bl.test")
    elif case == "task":
        _kumo.spawn_task(event_name="io.fail", args=[message.id])
    elif case == "conformance":
        failed = message.check_fix_conformance(
            "MISSING_COLON_VALUE", "LINE_TOO_LONG|NEEDS_TRANSFER_ENCODING")
        if failed:
            _kumo.reject(552, "5.6.0 " + failed)


async def io_fail(args: Any) -> None:
    raise RuntimeError("a spawned task failed on purpose")
'''


def _nested_mime(depth: int) -> bytes:
    body = b"leaf\r\n"
    for level in range(depth):
        boundary = f"N{level}".encode()
        body = (b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n--'
                + boundary + b"\r\n" + body + b"\r\n--" + boundary + b"--\r\n")
    return body


def _transaction(port: int, rcpt: str, headers: bytes, body: bytes,
                 timeout: float = 15.0) -> tuple[Any, float]:
    """The final reply to one transaction (or a string if the connection ended), and how
    long the DATA took."""
    started = time.monotonic()
    try:
        with abuse.SyncClient(port, abuse.TRUSTED, timeout) as client:
            client.hello("io.test")
            data = b"From: <io@src.test>\r\nTo: <" + rcpt.encode() + b">\r\n" + headers + body
            replies = client.mail("io@src.test", [rcpt], data)
            return replies[-1], time.monotonic() - started
    except (OSError, ConnectionError) as exc:
        return f"connection ended: {exc}", time.monotonic() - started


def _code(reply: Any) -> int | None:
    return getattr(reply, "code", None)


async def section_policy_io(bench: Bench) -> None:
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(64)  # accepts in the kernel backlog, never reads nor answers
    try:
        server = bench.server(
            extra=POLICY_IO.format(hang_port=hang.getsockname()[1]),
            listener={"data_processing_timeout": "2s"},
        )
        await _cases(bench, server)
    finally:
        hang.close()


async def _cases(bench: Bench, server: Any) -> None:
    port = server.port
    body = b"Subject: io\r\n\r\nhello\r\n"
    figures: dict[str, Any] = {}

    rcpt = f"ok.{bench.tag('io')}@crash.test"
    reply, took = _transaction(port, rcpt, b"X-IO: hang\r\n", body)
    figures["hang_reply_seconds"] = round(took, 2)
    bench.hostile("policy_io", "kumo.http call to a server that never answers",
                  _code(reply) == 451 and took < 10, f"got {reply} after {took:.1f}s")
    bench.probe_ok(server, "policy_io", "a hung HTTP call")

    rcpt = f"ok.{bench.tag('io')}@crash.test"
    reply, took = _transaction(port, rcpt, b"X-IO: mime\r\n", _nested_mime(2000))
    figures["nested_mime_seconds"] = round(took, 2)
    bench.hostile("policy_io", "msg:parse_mime on MIME nested 2000 levels deep",
                  _code(reply) == 421, f"got {reply}")
    bench.probe_ok(server, "policy_io", "deeply nested MIME")

    rcpt = f"ok.{bench.tag('io')}@crash.test"
    reply, _ = _transaction(port, rcpt, b"X-IO: rbl\r\nX-IP: 999.1.1.1:x\r\n", body)
    bench.hostile("policy_io", "kumo.dns.rbl_lookup of a garbage address",
                  _code(reply) == 421, f"got {reply}")
    bench.probe_ok(server, "policy_io", "a garbage RBL lookup")

    rcpts = [f"ok.{bench.tag('io')}@crash.test" for _ in range(5)]
    replies = [_transaction(port, r, b"X-IO: task\r\n", body)[0] for r in rcpts]
    missing = bench.delivered(rcpts, 20)
    bench.hostile("policy_io", "kumo.spawn_task whose task raises, five times",
                  all(_code(r) == 250 for r in replies) and not missing,
                  f"replies {replies}, undelivered {missing}")

    rcpt = f"ok.{bench.tag('io')}@crash.test"
    # 2 MB of 8-bit text in 800-byte lines (under the listener's 998-byte hard limit).
    eight_bit = ("é" * 400 + "\r\n").encode() * 2500
    reply, took = _transaction(port, rcpt, b"X-IO: conformance\r\n",
                               b"Subject: io\r\n\r\n" + eight_bit, timeout=30)
    figures["conformance_fix_2mb_seconds"] = round(took, 2)
    missing = bench.delivered([rcpt], 20)
    bench.hostile("policy_io", "check_fix_conformance re-encoding 2 MB of 8-bit long lines",
                  _code(reply) == 250 and not missing, f"got {reply}, undelivered {missing}")
    bench.probe_ok(server, "policy_io", "a large conformance fix")
    bench.figures["policy_io"] = figures
