"""A blocking line-level SMTP client for hostile-client tests, and a probe transaction."""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Sequence
from typing import Any

from bench.common.smtp_client import Reply

UNTRUSTED = "127.0.0.5"
TRUSTED = "127.0.0.1"
_REPLY_LINE = re.compile(rb"^([2-5][0-9][0-9])([ -])(.*)$", re.S)


# ---------------------------------------------------------------------------- client


class ProtocolViolation(AssertionError):
    """The server sent something that is not an SMTP reply."""


def parse_replies(data: bytes) -> tuple[list[Reply], bytes]:
    """Complete replies in ``data`` and the unparsed rest; raises on a malformed line."""
    replies: list[Reply] = []
    lines: list[str] = []
    while b"\r\n" in data:
        raw, data = data.split(b"\r\n", 1)
        match = _REPLY_LINE.match(raw)
        if match is None:
            raise ProtocolViolation(f"not an SMTP reply line: {raw[:200]!r}")
        lines.append(match.group(3).decode("utf-8", "replace"))
        if match.group(2) == b" ":
            replies.append(Reply(int(match.group(1)), tuple(lines)))
            lines = []
    return replies, data


class SyncClient:
    """A blocking line-level SMTP client (exact bytes out, every reply in)."""

    def __init__(self, port: int, source: str = TRUSTED, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout, source_address=(source, 0)
        )
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.pending: list[Reply] = []

    def read_reply(self, timeout: float | None = None) -> Reply:
        if timeout is not None:
            self.sock.settimeout(timeout)
        while not self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed (buffer {self.buffer[:100]!r})")
            replies, self.buffer = parse_replies(self.buffer + chunk)
            self.pending.extend(replies)
        return self.pending.pop(0)

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def command(self, line: str | bytes) -> Reply:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.read_reply()

    def hello(self, domain: str = "client.test") -> Reply:
        greeting = self.read_reply()
        if greeting.code != 220:
            return greeting
        return self.command(f"EHLO {domain}")

    def mail(self, sender: str, recipients: Sequence[str], body: bytes) -> list[Reply]:
        """MAIL, RCPT... DATA, ``body`` + ``.CRLF``; every reply (stops at a refusal)."""
        replies = [self.command(f"MAIL FROM:<{sender}>")]
        if replies[-1].code != 250:
            return replies
        for recipient in recipients:
            replies.append(self.command(f"RCPT TO:<{recipient}>"))
            if replies[-1].code == 421:
                return replies
        if not any(r.code == 250 for r in replies[1:]):
            return replies
        replies.append(self.command("DATA"))
        if replies[-1].code != 354:
            return replies
        self.send(body + (b"" if body.endswith(b"\r\n") or not body else b"\r\n") + b".\r\n")
        replies.append(self.read_reply())
        return replies

    def closed(self, timeout: float = 5.0) -> bool:
        """Read until EOF (True) or ``timeout`` (False)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except (TimeoutError, OSError):
            return False
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def body_for(recipient: str, extra: bytes = b"") -> bytes:
    return (
        (
            f"From: <probe@src.test>\r\nTo: <{recipient}>\r\nSubject: probe\r\n"
            f"X-Rel-Id: {recipient}\r\n\r\n"
        ).encode()
        + extra
        + b"hello\r\n"
    )


def probe(port: int, recipient: str, *, source: str = TRUSTED, timeout: float = 10.0) -> Reply:
    """A normal transaction: the server must still serve after whatever came before."""
    with SyncClient(port, source, timeout) as client:
        client.hello("probe.test")
        replies = client.mail("probe@src.test", [recipient], body_for(recipient))
        with contextlib.suppress(OSError, ConnectionError):
            client.command("QUIT")
        return replies[-1]


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
