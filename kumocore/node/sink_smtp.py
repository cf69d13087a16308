"""The SMTP side of ``kumocore sink``: a small receiving server with a bound on everything a
hostile or runaway client could use up.

Bounds (:class:`SinkLimits`): message size (``552 5.3.4`` once past it; the rest of the
message is read and dropped, never kept), line length (commands and message lines; the
excess is dropped as it arrives), idle time per read and total session time (``421 4.4.2``
and the connection is closed), concurrent connections (the excess get ``421 4.7.0`` and are
closed) and recipients per message (``452 4.5.3``). Storage bounds belong to whoever keeps
the messages: ``deliver`` may refuse one with a reply of its own.

Its own small server rather than aiosmtpd's: aiosmtpd keeps an unterminated line of any
length in memory and has no session or connection bound.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
HOSTNAME = "sink.kumocore.test"
_PATH = re.compile(rb"^(?:FROM|TO):\s*<([^<>]*)>\s*(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class SinkLimits:
    max_message_bytes: int = 10 * 1024 * 1024
    max_line_bytes: int = 1000  # RFC 5321 4.5.3.1.6: a text line, CRLF included
    idle_timeout: float = 60.0  # seconds for the next line (or the reading of a reply)
    session_timeout: float = 600.0  # seconds for a whole connection
    max_connections: int = 20
    max_recipients: int = 100  # RFC 5321 4.5.3.1.8: a server must take at least 100


@dataclass
class Envelope:
    sender: str
    recipients: list[str] = field(default_factory=list)


class SessionEnd(Exception):
    """The session is over: a bound was passed (the reply says which) or the client left."""

    def __init__(self, reply: str = "") -> None:
        super().__init__(reply)
        self.reply = reply


class LineTooLong(Exception):
    """A line was longer than the bound; what came of it was dropped, up to its end."""


#: What becomes of a received message: None (stored, 250) or the reply to give instead.
Deliver = Callable[[Envelope, bytes], Awaitable[str | None]]


class SinkServer:
    """Serves every connection under ``limits``, handing each message to ``deliver``."""

    def __init__(self, limits: SinkLimits, deliver: Deliver) -> None:
        self.limits = limits
        self.deliver = deliver
        self.active = 0

    async def start(self, host: str, port: int) -> asyncio.Server:
        # The reader's limit is the line bound: a longer line raises instead of growing.
        # (readuntil lets the separator stand at index ``limit``: one octet more.)
        limit = max(self.limits.max_line_bytes - 1, 1)
        return await asyncio.start_server(self.handle, host, port, limit=limit)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= self.limits.max_connections:
            writer.write(b"421 4.7.0 too many connections to the sink, try again later\r\n")
            await _close(writer)
            return
        self.active += 1
        try:
            await _Session(self, reader, writer).run()
        finally:
            self.active -= 1
            await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 5)
    except (OSError, TimeoutError):
        pass  # the client is gone or does not read: closed all the same


class _Session:
    def __init__(self, server: SinkServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:  # fmt: skip
        self.limits = server.limits
        self.deliver = server.deliver
        self.reader, self.writer = reader, writer
        self.deadline = time.monotonic() + self.limits.session_timeout
        self.envelope: Envelope | None = None

    async def run(self) -> None:
        try:
            await self.reply(f"220 {HOSTNAME} ESMTP kumocore sink")
            while True:
                try:
                    line = await self.read_line()
                except LineTooLong:
                    await self.reply("500 5.5.2 command line too long")
                    continue
                if not await self.command(line.rstrip(b"\r\n")):
                    return
        except SessionEnd as end:
            if end.reply:
                self.writer.write(end.reply.encode() + b"\r\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            return

    # ---------------------------------------------------------------- reading, writing
    def _wait(self) -> float:
        """Seconds the next read or write may take; past the session bound, the end."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise SessionEnd("421 4.4.2 session time limit reached, closing")
        return min(left, self.limits.idle_timeout)

    async def _timed(self, step: Awaitable[T]) -> T:
        wait = self._wait()
        try:
            return await asyncio.wait_for(step, wait)
        except TimeoutError:
            self._wait()  # raises if the session bound is what ran out
            raise SessionEnd("421 4.4.2 idle timeout, closing") from None

    async def read_line(self) -> bytes:
        """One line with its end, or :class:`LineTooLong` once the over-long one is read."""
        try:
            line = await self._timed(self.reader.readuntil(b"\n"))
        except asyncio.LimitOverrunError:
            await self._drop_rest_of_line()
            raise LineTooLong() from None
        if not line:
            raise SessionEnd()
        return line

    async def _drop_rest_of_line(self) -> None:
        while True:
            try:
                await self._timed(self.reader.readuntil(b"\n"))
                return
            except asyncio.LimitOverrunError as overrun:
                await self._timed(self.reader.readexactly(overrun.consumed))

    async def reply(self, text: str) -> None:
        self.writer.write(text.encode() + b"\r\n")
        await self._timed(self.writer.drain())  # a client that does not read is idle

    # ---------------------------------------------------------------- commands
    async def command(self, line: bytes) -> bool:
        verb, _, arg = line.partition(b" ")
        verb = verb.upper()
        if verb in (b"EHLO", b"HELO"):
            await self.hello(verb, arg)
        elif verb == b"MAIL":
            await self.mail(arg)
        elif verb == b"RCPT":
            await self.rcpt(arg)
        elif verb == b"DATA":
            await self.data()
        elif verb == b"RSET":
            self.envelope = None
            await self.reply("250 2.0.0 OK")
        elif verb == b"NOOP":
            await self.reply("250 2.0.0 OK")
        elif verb == b"QUIT":
            await self.reply("221 2.0.0 bye")
            return False
        else:
            await self.reply("502 5.5.1 command not implemented")
        return True

    async def hello(self, verb: bytes, arg: bytes) -> None:
        self.envelope = None
        if verb == b"HELO":
            await self.reply(f"250 {HOSTNAME}")
            return
        extensions = [HOSTNAME, f"SIZE {self.limits.max_message_bytes}", "8BITMIME",
                      "SMTPUTF8", "PIPELINING", "ENHANCEDSTATUSCODES"]  # fmt: skip
        lines = [f"250-{text}" for text in extensions[:-1]] + [f"250 {extensions[-1]}"]
        await self.reply("\r\n".join(lines))

    async def mail(self, arg: bytes) -> None:
        match = _PATH.match(arg)
        if match is None or not arg.upper().startswith(b"FROM:"):
            await self.reply("501 5.5.4 syntax: MAIL FROM:<address>")
            return
        if self.envelope is not None:
            await self.reply("503 5.5.1 nested MAIL command")
            return
        size = re.search(rb"(?:^|\s)SIZE=(\d+)", match[2], re.IGNORECASE)
        if size and int(size[1]) > self.limits.max_message_bytes:
            await self.reply(self._too_big())
            return
        self.envelope = Envelope(match[1].decode("utf-8", "replace"))
        await self.reply("250 2.1.0 OK")

    async def rcpt(self, arg: bytes) -> None:
        match = _PATH.match(arg)
        if match is None or not arg.upper().startswith(b"TO:"):
            await self.reply("501 5.5.4 syntax: RCPT TO:<address>")
        elif self.envelope is None:
            await self.reply("503 5.5.1 MAIL first")
        elif len(self.envelope.recipients) >= self.limits.max_recipients:
            await self.reply(
                f"452 4.5.3 too many recipients (the sink takes {self.limits.max_recipients})"
            )
        else:
            self.envelope.recipients.append(match[1].decode("utf-8", "replace"))
            await self.reply("250 2.1.5 OK")

    async def data(self) -> None:
        envelope, self.envelope = self.envelope, None
        if envelope is None or not envelope.recipients:
            self.envelope = envelope
            await self.reply("503 5.5.1 RCPT first")
            return
        await self.reply("354 end data with <CR><LF>.<CR><LF>")
        content, problem = await self.read_message()
        if problem:
            await self.reply(problem)
            return
        refused = await self.deliver(envelope, content)
        await self.reply(refused or "250 2.0.0 OK: saved by kumocore sink")

    async def read_message(self) -> tuple[bytes, str]:
        """The message up to the lone dot, dot-unstuffed; past a bound, nothing kept and
        the reply that says which (the rest is still read, to find the end)."""
        chunks: list[bytes] = []
        size, problem = 0, ""
        while True:
            try:
                line = await self.read_line()
            except LineTooLong:
                chunks, problem = [], problem or (
                    f"500 5.5.2 line too long (the sink takes {self.limits.max_line_bytes} "
                    "octets a line)"
                )
                continue
            if line in (b".\r\n", b".\n"):
                return b"".join(chunks), problem
            if line.startswith(b"."):
                line = line[1:]
            size += len(line)
            if size > self.limits.max_message_bytes and not problem:
                problem = self._too_big()
            if problem:
                chunks = []
            else:
                chunks.append(line)

    def _too_big(self) -> str:
        return f"552 5.3.4 message too big (the sink takes {self.limits.max_message_bytes} bytes)"
