"""A line-level SMTP client on a raw asyncio stream, for tests that check exact replies.

Libraries normalise line endings, dot-stuff and hide multi-line replies; the listener tests
need to send exactly the bytes an attacker would (bare LF, bare CR, pipelined commands)
and see every reply. The client can bind to any loopback source address, which is how
tests act as a trusted relay host (127.0.0.1) or an untrusted peer (127.0.0.5).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import ClassVar

__all__ = ["RawSmtpClient", "Reply", "insecure_client_context"]


@dataclass(frozen=True)
class Reply:
    """One (possibly multi-line) SMTP reply."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The text of the last line (the whole reply for single-line replies)."""
        return self.lines[-1] if self.lines else ""

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


def insecure_client_context() -> ssl.SSLContext:
    """A TLS client context that accepts the listener's self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class RawSmtpClient:
    """``await RawSmtpClient.connect(port, source="127.0.0.5")``, then ``command()``..."""

    #: Clients not closed yet, held until ``close_all()`` ends the ones a test left open
    #: (the tests' conftest calls it after each test), so a client a helper function
    #: dropped is closed in its loop instead of warning when it is garbage collected.
    _open: ClassVar[set[RawSmtpClient]] = set()

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.loop = asyncio.get_running_loop()
        RawSmtpClient._open.add(self)

    @classmethod
    async def close_all(cls) -> None:
        """Close the open clients of the running loop (others went with their loop)."""
        loop = asyncio.get_running_loop()
        for client in list(cls._open):
            if client.loop is loop:
                await client.close()
            elif client.loop.is_closed():
                cls._open.discard(client)  # its loop is gone: nothing left to close it with

    @classmethod
    async def connect(
        cls, port: int, *, host: str = "127.0.0.1", source: str = "127.0.0.1",
        timeout: float = 5.0,
    ) -> RawSmtpClient:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(source, 0), limit=1 << 20),
            timeout)
        return cls(reader, writer)

    async def read_reply(self, timeout: float = 5.0) -> Reply:
        lines: list[str] = []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), timeout)
            if not raw:
                raise ConnectionError(f"connection closed after {lines!r}")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                return Reply(int(line[:3]), tuple(lines))

    async def send(self, data: bytes | str) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)
        await self.writer.drain()

    async def command(self, line: str) -> Reply:
        await self.send(line + "\r\n")
        return await self.read_reply()

    async def hello(self, domain: str = "client.test") -> Reply:
        """Read the greeting and say EHLO; returns the EHLO reply."""
        await self.read_reply()
        return await self.command(f"EHLO {domain}")

    async def send_mail(
        self, sender: str, recipients: list[str], body: bytes | str
    ) -> tuple[list[Reply], Reply]:
        """MAIL, RCPTs, DATA and ``body`` (sent as is, then the final dot); returns the RCPT
        replies and the final reply (or the first refusal before DATA)."""
        reply = await self.command(f"MAIL FROM:<{sender}>")
        if reply.code != 250:
            return [], reply
        rcpts = [await self.command(f"RCPT TO:<{r}>") for r in recipients]
        reply = await self.command("DATA")
        if reply.code != 354:
            return rcpts, reply
        raw = body if isinstance(body, bytes) else body.encode()
        await self.send(raw + (b".\r\n" if raw.endswith(b"\r\n") else b"\r\n.\r\n"))
        return rcpts, await self.read_reply()

    async def starttls(self, context: ssl.SSLContext | None = None) -> Reply:
        reply = await self.command("STARTTLS")
        if reply.code == 220:
            await self.writer.start_tls(context or insecure_client_context())
        return reply

    async def closed(self, timeout: float = 5.0) -> bool:
        """Whether the server closed the connection (reads until EOF)."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), timeout)
        except (ConnectionError, TimeoutError):
            return False
        return rest == b"" or self.reader.at_eof()

    async def close(self) -> None:
        RawSmtpClient._open.discard(self)
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass
