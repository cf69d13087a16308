"""A hostile receiving MX for tests and the reliability bench (asyncio, loopback).

One listener whose behaviour is chosen by :attr:`HostileMx.mode`, switchable while it
runs (a test makes it hostile, then ``mx.mode = "benign"`` and expects the deferred mail
to arrive). Modes:

``benign``              a plain SMTP server (PIPELINING, optionally STARTTLS) that keeps
                        what it receives in :attr:`HostileMx.messages`; it refuses
                        ``permfail`` recipients (550) and, with ``refuse_rset``, answers
                        RSET with 421 and hangs up (Postfix's load shedding); with
                        ``rset_reply`` it answers RSET with that reply line instead and
                        carries on (an MX that refuses RSET but keeps the session)
``oversized_banner``    a 70 KiB greeting line
``oversized_mail``      a 70 KiB line in reply to MAIL FROM (``_rcpt``, ``_data``, ``_dot``:
                        to RCPT TO, to DATA, to the final dot)
``endless_multiline``   ``250-`` continuation lines for ever in reply to MAIL FROM
``garbage_banner``      binary garbage instead of a greeting
``garbage``             binary garbage in reply to MAIL FROM
``reset``               a TCP reset after the N-th command, N = 1, 2, 3… per connection,
                        so successive connections break at EHLO, MAIL, RCPT, DATA, dot
``starttls_injection``  ``220 Ready`` to STARTTLS followed, in the same write, by
                        plaintext replies; the TLS session then refuses everything
``slow_drip``           every reply (the greeting too) one byte per ``drip_interval``
``tls_garbage``         ``220`` to STARTTLS, then garbage instead of a TLS handshake
``tls_silent``          ``220`` to STARTTLS, then silence: the handshake never completes
``starttls_454``        offers STARTTLS, then refuses it (``454 4.7.0``) and carries on in
                        clear text: the client must not send mail over it
``stall_data``          ``354`` to DATA, then it stops reading: the body can never be sent
``data_250``            ``250`` to DATA (no ``354``): a body sent now would go nowhere
``ehlo_extra``          one reply line more than the EHLO reply has, after its last line
``dot_421``             ``421`` to the final dot, then it hangs up
``dot_354``             ``354`` to the final dot
``mail_503``            ``503`` (bad sequence of commands) to MAIL FROM
``banner_554``          a ``554`` greeting; it then only answers QUIT (RFC 5321 3.1)
``ehlo_500``            ``500`` to EHLO (a server that only knows HELO)
``double_dot_reply``    the final dot's ``250`` twice: the message is taken, the second
                        reply answers nothing
``rcpt550_data354``     every recipient refused, yet ``354`` to the pipelined DATA (the
                        case of RFC 2920 3.1); the body it reads is kept in
                        :attr:`HostileMx.bodies`
``no_8bit``             benign, but offers neither 8BITMIME nor SMTPUTF8
``idle_421``            benign, but 0.2 s after each message it says ``421`` and hangs up
                        (a server's idle timeout)

:data:`DEFERRING_MODES` are the hostile modes in which every message must be deferred (a
TransientFailure) and none delivered; in ``double_dot_reply`` the message is delivered, in
``rcpt550_data354`` it bounces, ``no_8bit`` refuses only 8-bit mail and ``idle_421``
delivers.

It counts connections (with their times) so a test can measure how hard the client
reconnects, and remembers the commands it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field

#: Egress path options that give up on a stalled hostile MX in seconds, not minutes.
SHORT_TIMEOUTS = {
    "banner_timeout": "2s",
    "ehlo_timeout": "2s",
    "mail_from_timeout": "2s",
    "rcpt_to_timeout": "2s",
    "data_timeout": "2s",
    "data_dot_timeout": "2s",
    "starttls_timeout": "2s",
    "enable_tls": "OpportunisticInsecure",
}

MODES = (
    "benign",
    "oversized_banner",
    "oversized_mail",
    "oversized_rcpt",
    "oversized_data",
    "oversized_dot",
    "endless_multiline",
    "garbage_banner",
    "garbage",
    "reset",
    "starttls_injection",
    "slow_drip",
    "tls_garbage",
    "stall_data",
    "tls_silent",
    "starttls_454",
    "data_250",
    "ehlo_extra",
    "dot_421",
    "dot_354",
    "mail_503",
    "banner_554",
    "ehlo_500",
    "double_dot_reply",
    "rcpt550_data354",
    "no_8bit",
    "idle_421",
)
DEFERRING_MODES = tuple(
    mode for mode in MODES
    if mode not in ("benign", "double_dot_reply", "rcpt550_data354", "no_8bit", "idle_421"))

#: Longer than any sane reply line and than asyncio's default 64 KiB stream limit.
OVERSIZED = 70 * 1024
GARBAGE = b"\x00\xff\xfe\x16\x03\x01 not smtp \x85\x1b[2J\r\n"
#: The replies a STARTTLS injector hopes the client reads as coming over TLS.
INJECTED = b"250 injected-ehlo\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n250 2.0.0 queued\r\n"


@dataclass
class Received:
    sender: str
    recipient: str
    data: bytes
    at: float = field(default_factory=time.monotonic)


class _Reset(Exception):
    """The mode wants this connection reset now."""


@dataclass
class HostileMx:
    """Start with ``await mx.start()`` (or ``async with``); it listens on ``mx.port``."""

    mode: str = "benign"
    host: str = "127.0.0.1"
    port: int = 0
    starttls: bool = False  # advertise STARTTLS in benign mode too
    drip_interval: float = 1.0
    hostname: str = "mx.hostile.test"
    # Postfix's load shedding: RSET counts as a junk command, answered 421 and hung up.
    refuse_rset: bool = False
    # A reply line (CRLF added) for every RSET, the session going on: an MX refusing RSET.
    rset_reply: str | None = None
    connections: list[float] = field(default_factory=list)
    messages: list[Received] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)  # rcpt550_data354: what DATA read
    _server: asyncio.base_events.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _tls: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown hostile MX mode {self.mode!r}; one of {MODES}")

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> HostileMx:
        from kumocore.reception.tls import server_context

        self._tls = server_context(self.hostname)
        self._server = await asyncio.start_server(
            self._on_connection, self.host, self.port, limit=1 << 20
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # the sessions then end on their own
        if self._tasks:
            # Cancelling a start_server callback task makes asyncio log a traceback.
            _, pending = await asyncio.wait(list(self._tasks), timeout=5)
            for task in pending:
                task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def __aenter__(self) -> HostileMx:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def connections_since(self, since: float) -> int:
        """Connections accepted at or after ``since`` (``time.monotonic()``)."""
        return sum(1 for at in self.connections if at >= since)

    @property
    def open_connections(self) -> int:
        return len(self._writers)

    # ------------------------------------------------------------------ one connection
    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections.append(time.monotonic())
        number = len(self.connections)
        try:
            await _Session(self, reader, writer, self.mode, number).run()
        except _Reset:
            _reset(writer)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError, ValueError):
            pass  # the client went away or broke off: what a hostile MX expects
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0) rather than a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Session:
    def __init__(
        self,
        mx: HostileMx,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        mode: str,
        number: int,
    ) -> None:
        self.mx, self.reader, self.writer, self.mode = mx, reader, writer, mode
        self.number = number
        self.commands_seen = 0
        self.tls = False
        self.sender = ""
        self.recipients: list[str] = []
        # reset mode: connection 1 breaks at its 1st command (EHLO), 2 at MAIL, 3 at
        # RCPT, 4 at DATA, 5 after the body (before the final reply), 6 at EHLO again…
        self.reset_step = (number - 1) % 5 + 1

    async def send(self, data: bytes) -> None:
        if self.mode == "slow_drip":
            for index in range(len(data)):
                self.writer.write(data[index : index + 1])
                await self.writer.drain()
                await asyncio.sleep(self.mx.drip_interval)
            return
        self.writer.write(data)
        await self.writer.drain()

    async def run(self) -> None:
        mode = self.mode
        if mode == "oversized_banner":
            await self.send(b"220 " + b"x" * OVERSIZED + b"\r\n")
            await self.reader.read()  # hold the connection until the client gives up
            return
        if mode == "garbage_banner":
            await self.send(GARBAGE)
            await self.reader.read()
            return
        if mode == "banner_554":
            await self.send(b"554 5.3.2 mx.hostile.test no service here\r\n")
            while line := await self.reader.readline():
                self.mx.commands.append(line.rstrip(b"\r\n").decode("utf-8", "replace"))
                if line[:4].upper() == b"QUIT":
                    await self.send(b"221 2.0.0 bye\r\n")
                    return
                await self.send(b"503 5.5.1 no service here\r\n")
            return
        await self.send(f"220 {self.mx.hostname} ESMTP hostile\r\n".encode())
        while True:
            line = await self.reader.readline()
            if not line:
                return
            if not await self.command(line.rstrip(b"\r\n").decode("utf-8", "replace")):
                return

    async def command(self, line: str) -> bool:
        """Answer one command; False ends the session."""
        self.mx.commands.append(line)
        self.commands_seen += 1
        if self.mode == "reset" and self.commands_seen >= self.reset_step:
            raise _Reset
        verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
        if self.tls and self.mode == "starttls_injection":
            await self.send(b"554 5.7.1 this TLS session refuses everything\r\n")
            return verb != "QUIT"
        handler = {
            "EHLO": self.ehlo,
            "HELO": self.ehlo,
            "STARTTLS": self.starttls,
            "MAIL": self.mail,
            "RCPT": self.rcpt,
            "DATA": self.data,
            "RSET": self.rset,
            "NOOP": self.rset,
        }.get(verb)
        if verb == "QUIT":
            await self.send(b"221 2.0.0 bye\r\n")
            return False
        if handler is None:
            await self.send(b"502 5.5.2 command not recognized\r\n")
            return True
        return await handler(line)

    async def ehlo(self, line: str) -> bool:
        if self.mode == "ehlo_500" and line[:4].upper() == "EHLO":
            await self.send(b"500 5.5.1 command unrecognized\r\n")
            return True
        offer_tls = not self.tls and (
            self.mx.starttls
            or self.mode in ("starttls_injection", "tls_garbage", "tls_silent", "starttls_454")
        )
        lines = [f"250-{self.mx.hostname}", "250-PIPELINING"]
        if self.mode != "no_8bit":
            lines += ["250-8BITMIME", "250-SMTPUTF8"]
        if offer_tls:
            lines.append("250-STARTTLS")
        lines.append("250 SIZE 100000000")
        if self.mode == "ehlo_extra":
            lines.append("250 HELP")
        await self.send(("\r\n".join(lines) + "\r\n").encode())
        return True

    async def starttls(self, line: str) -> bool:
        if self.mode == "starttls_454":
            await self.send(b"454 4.7.0 TLS not available due to local problem\r\n")
            return True
        if self.mode == "tls_garbage":
            await self.send(b"220 2.0.0 Ready to start TLS\r\n")
            await self.reader.read(1)  # the ClientHello has begun: answer it with garbage
            await self.send(GARBAGE * 64)
            await self.reader.read()
            return False
        if self.mode == "tls_silent":
            await self.send(b"220 2.0.0 Ready to start TLS\r\n")
            await self.reader.read()  # swallow the ClientHello, answer nothing
            return False
        if self.mode == "starttls_injection":
            await self.send(b"220 2.0.0 Ready to start TLS\r\n" + INJECTED)
        else:
            await self.send(b"220 2.0.0 Ready to start TLS\r\n")
        assert self.mx._tls is not None
        await asyncio.wait_for(self.writer.start_tls(self.mx._tls), 10)
        self.tls = True
        return True

    async def mail(self, line: str) -> bool:
        if self.mode == "oversized_mail":
            await self.send(b"250 " + b"m" * OVERSIZED + b"\r\n")
            return True
        if self.mode == "endless_multiline":
            while not self.writer.transport.is_closing():
                await self.send(b"250-" + b"still going " * 8 + b"\r\n")
            return False
        if self.mode == "garbage":
            await self.send(GARBAGE)
            return True
        if self.mode == "mail_503":
            await self.send(b"503 5.5.1 bad sequence of commands\r\n")
            return True
        self.sender = line.partition(":")[2].strip().split(" ")[0].strip("<>")
        self.recipients = []
        await self.send(b"250 2.1.0 sender ok\r\n")
        return True

    async def rcpt(self, line: str) -> bool:
        if self.mode == "oversized_rcpt":
            await self.send(b"250 " + b"r" * OVERSIZED + b"\r\n")
            return True
        recipient = line.partition(":")[2].strip().split(" ")[0].strip("<>")
        if self.mode == "rcpt550_data354":
            await self.send(b"550 5.1.1 user unknown\r\n")
            return True
        if self.mode == "mail_503":  # no transaction was started
            await self.send(b"503 5.5.1 MAIL first\r\n")
            return True
        if "permfail" in recipient.split("@")[0]:  # as the recording sink does
            await self.send(b"550 5.1.1 user unknown (permfail requested)\r\n")
            return True
        self.recipients.append(recipient)
        await self.send(b"250 2.1.5 recipient ok\r\n")
        return True

    async def data(self, line: str) -> bool:
        if self.mode == "oversized_data":
            await self.send(b"354 " + b"d" * OVERSIZED + b"\r\n")
            return True
        if self.mode == "data_250":
            await self.send(b"250 2.0.0 accepted without a body\r\n")
            return True
        if not self.recipients and self.mode != "rcpt550_data354":
            await self.send(b"503 5.5.1 no valid recipients\r\n")
            return True
        await self.send(b"354 go ahead\r\n")
        if self.mode == "stall_data":
            # Stop reading: the client's send buffer and ours fill up, and stay full.
            transport = self.writer.transport  # typed as a write-only transport
            assert isinstance(transport, asyncio.Transport)
            transport.pause_reading()
            while not transport.is_closing():  # until stop() aborts it
                await asyncio.sleep(0.2)
            return False
        body = bytearray()
        while True:
            chunk = await self.reader.readline()
            if not chunk:
                return False
            if chunk == b".\r\n":
                break
            body += chunk[1:] if chunk.startswith(b".") else chunk
        if self.mode == "reset":  # reached only on the connections that break at the dot
            raise _Reset
        if self.mode == "rcpt550_data354":
            self.mx.bodies.append(bytes(body))
            await self.send(b"554 5.5.1 no valid recipients\r\n")
            return True
        if self.mode == "dot_421":
            await self.send(b"421 4.3.0 mx.hostile.test shutting down\r\n")
            return False
        if self.mode == "dot_354":
            await self.send(b"354 send more\r\n")
            return True
        if self.mode == "oversized_dot":
            await self.send(b"250 " + b"q" * OVERSIZED + b"\r\n")
            return True
        for recipient in self.recipients:
            self.mx.messages.append(Received(self.sender, recipient, bytes(body)))
        self.recipients = []
        reply = b"250 2.0.0 queued\r\n"
        await self.send(reply * 2 if self.mode == "double_dot_reply" else reply)
        if self.mode == "idle_421":
            await asyncio.sleep(0.2)
            await self.send(b"421 4.4.2 mx.hostile.test idle for too long\r\n")
            return False
        return True

    async def rset(self, line: str) -> bool:
        if self.mx.refuse_rset and line.upper().startswith("RSET"):
            await self.send(b"421 4.7.0 mx.hostile.test Error: too many errors\r\n")
            return False
        if self.mx.rset_reply is not None and line.upper().startswith("RSET"):
            await self.send(self.mx.rset_reply.encode() + b"\r\n")
            return True
        self.recipients = []
        await self.send(b"250 2.0.0 ok\r\n")
        return True
