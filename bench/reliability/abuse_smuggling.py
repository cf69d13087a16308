"""SMTP smuggling: a second transaction hidden behind a non-CRLF end-of-data."""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass

from bench.common.client import TRUSTED, SyncClient, body_for
from bench.common.smtp_client import Reply
from bench.common.world import CRASH_DOMAIN

_SMUGGLED = (
    b"MAIL FROM:<smuggler@src.test>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n"
    b"From: <smuggler@src.test>\r\nSubject: smuggled\r\n\r\nsmuggled\r\n"
)
#: The end-of-data variants of SEC Consult's research (Dec 2023) and their mirrors.
SMUGGLING_VARIANTS: dict[str, bytes] = {
    "LF.LF": b"\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CR.CR": b"\r.\r",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.CR": b"\r\n.\r",
    "LF.CR": b"\n.\r",
    "CRLF.NUL.CRLF": b"\r\n.\x00\r\n",
    "CRLF.space.CRLF": b"\r\n. \r\n",
    "CRLF..CRLF (stuffed)": b"\r\n..\r\n",
}


@dataclass
class SmugglingResult:
    variant: str
    replies: list[Reply]
    smuggled_recipient: str
    outer_recipient: str

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.replies if r.code == 250 and r.text.startswith("OK ids="))


def try_smuggling(port: int, variant: str, tag: str, *, source: str = TRUSTED) -> SmugglingResult:
    """DATA that hides a whole second transaction behind ``variant``; a trusted peer, so
    the smuggled RCPT would be relayed if it were ever read as a command."""
    outer = f"ok.smuggle-{tag}@{CRASH_DOMAIN}"
    inner = f"smuggled.{tag}@{CRASH_DOMAIN}"
    payload = (
        body_for(outer).rstrip(b"\r\n")
        + SMUGGLING_VARIANTS[variant]
        + _SMUGGLED.replace(b"{rcpt}", inner.encode())
        + b".\r\n"
    )
    replies: list[Reply] = []
    with SyncClient(port, source) as client:
        client.hello("smuggler.test")
        replies.append(client.command("MAIL FROM:<smuggler@src.test>"))
        replies.append(client.command(f"RCPT TO:<{outer}>"))
        replies.append(client.command("DATA"))
        client.send(payload)
        client.send(b"QUIT\r\n")
        client.sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError, ConnectionError, TimeoutError):
            while True:
                replies.append(client.read_reply(timeout=5))
    return SmugglingResult(variant, replies, inner, outer)
