"""A recording SMTP server on 127.0.0.1 that refuses chosen recipients at ``RCPT TO``.

For multi-recipient transactions: :attr:`RcptSink.replies` maps a recipient to the
reply its ``RCPT TO`` gets (any other is accepted, up to :attr:`max_recipients` per
transaction, beyond which :attr:`too_many_reply`, by default ``452 4.5.3``); every
command line is recorded with its connection number, and every message body received
as a :class:`Transaction` naming the recipients accepted for it. ``DATA`` with no
accepted recipient is refused (``503``), as Postfix does. With :attr:`lmtp` it speaks
LMTP. Without :attr:`pipelining` the EHLO reply does not offer PIPELINING, and a client
that sends a command before the reply to the one before it is counted in
:attr:`sent_ahead` (a pipelining client would be).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class Transaction:
    connection: int
    sender: str
    recipients: list[str]
    body: bytes


@dataclass
class RcptSink:
    replies: dict[str, str] = field(default_factory=dict)
    pipelining: bool = True
    max_recipients: int | None = None
    #: The reply to a recipient beyond :attr:`max_recipients` (an old server's ``552``).
    too_many_reply: str = "452 4.5.3 too many recipients"
    #: Replaces the reply to DATA (``354`` even with no recipient accepted: RFC 2920
    #: 3.1's case; or a refusal), and the final reply to the dot.
    data_reply: str | None = None
    dot_reply: str | None = None
    #: An LMTP server (RFC 2033): LHLO, and after the dot a reply per accepted
    #: recipient, ``lmtp_replies`` (by recipient) or ``250``.
    lmtp: bool = False
    lmtp_replies: dict[str, str] = field(default_factory=dict)
    port: int = 0
    commands: list[tuple[int, str]] = field(default_factory=list)
    transactions: list[Transaction] = field(default_factory=list)
    connections: int = 0
    sent_ahead: int = 0
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> RcptSink:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    def verbs(self, connection: int | None = None) -> list[str]:
        """The command verbs received (on ``connection``, or on all), in order."""
        return [line.split(" ", 1)[0].split(":", 1)[0].upper()
                for number, line in self.commands if connection in (None, number)]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            writer.write(b"220 rcpt-sink.test ESMTP\r\n")
            await _Session(self, number, reader, writer).run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


class _Session:
    def __init__(self, sink: RcptSink, number: int, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.sink, self.number, self.reader, self.writer = sink, number, reader, writer
        self.sender: str | None = None
        self.accepted: list[str] = []

    async def run(self) -> None:
        while line := await self.reader.readline():
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            self.sink.commands.append((self.number, text))
            # StreamReader has no public peek: bytes beyond this line were sent ahead.
            if not self.sink.pipelining and getattr(self.reader, "_buffer", b""):
                self.sink.sent_ahead += 1
            verb = text.split(" ", 1)[0].split(":", 1)[0].upper()
            if verb == "QUIT":
                self.writer.write(b"221 bye\r\n")
                await self.writer.drain()
                return
            reply = await self.reply(verb, text)
            self.writer.write(reply.encode() + b"\r\n")
            await self.writer.drain()
            if reply.startswith("421"):  # the server closes the session (RFC 5321 3.8)
                return

    async def reply(self, verb: str, text: str) -> str:
        if verb in ("EHLO", "HELO", "LHLO"):
            offers = ["rcpt-sink.test", "8BITMIME", "SMTPUTF8"]
            if self.sink.pipelining:
                offers.append("PIPELINING")
            return "\r\n".join(f"250{'-' if n < len(offers) - 1 else ' '}{o}"
                               for n, o in enumerate(offers))
        if verb == "MAIL":
            self.sender, self.accepted = _address(text), []
            return "250 2.1.0 sender ok"
        if verb == "RCPT":
            return self.rcpt(_address(text))
        if verb == "DATA":
            return await self.data()
        if verb in ("RSET", "NOOP"):
            self.sender, self.accepted = None, []
            return "250 2.0.0 ok"
        return "500 5.5.2 unknown command"

    def rcpt(self, recipient: str) -> str:
        if self.sender is None:
            return "503 5.5.1 MAIL first"
        chosen = self.sink.replies.get(recipient.lower())
        if chosen is not None:
            return chosen
        limit = self.sink.max_recipients
        if limit is not None and len(self.accepted) >= limit:
            return self.sink.too_many_reply
        self.accepted.append(recipient)
        return "250 2.1.5 recipient ok"

    async def data(self) -> str:
        chosen = self.sink.data_reply
        if chosen is not None and not chosen.startswith("354"):
            return chosen
        if not self.accepted and chosen is None:
            return "503 5.5.1 no valid recipients"
        self.writer.write(b"354 go ahead\r\n")
        await self.writer.drain()
        body = bytearray()
        while (line := await self.reader.readline()) != b".\r\n":
            if not line:
                raise ConnectionResetError("the client left during DATA")
            body += line[1:] if line.startswith(b".") else line
        sender, accepted = self.sender or "", self.accepted
        self.sender, self.accepted = None, []
        if not accepted:  # the lone dot of RFC 2920 3.1: no message
            return "554 5.5.1 no valid recipients"
        if self.sink.dot_reply is not None:
            return self.sink.dot_reply
        if self.sink.lmtp:
            chosen = self.sink.lmtp_replies
            delivered = [name for name in accepted if name not in chosen]
            self.sink.transactions.append(
                Transaction(self.number, sender, delivered, bytes(body)))
            return "\r\n".join(chosen.get(name, f"250 2.0.0 <{name}> delivered")
                               for name in accepted)
        self.sink.transactions.append(
            Transaction(self.number, sender, accepted, bytes(body)))
        return f"250 2.0.0 OK id={len(self.sink.transactions)}"


def _address(text: str) -> str:
    return text.split(":", 1)[1].strip().split(" ", 1)[0].strip("<>")
