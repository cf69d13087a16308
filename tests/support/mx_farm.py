"""Scripted MX hosts on several loopback addresses sharing one port (asyncio).

A test of which MX host a session uses needs hosts told apart by address, as a DNS MX
set names them, on the one port the egress path connects to (``smtp_port``). Each
:class:`Host` answers like a small SMTP server (or, with ``lmtp``, an RFC 2033 LMTP
server: LHLO only, and after the dot one reply per accepted recipient). What a host
does at the end of each transaction comes from its ``script`` (one entry per
transaction, then ``ok``):

``ok``    ``250`` to the dot (LMTP: the recipient's reply, see :data:`LMTP_REPLIES`)
``drop``  the body is read, then the connection is closed without a reply
``421``   ``421 4.3.2`` to the dot, then the connection is closed

A host with ``banner`` other than ``220 ...`` refuses every session with it; one with
``rset_reply`` answers RSET with it; one with ``starttls`` offers STARTTLS.
:attr:`MxFarm.events` records, across hosts and in order, ``(host, event)`` pairs:
``connect``, ``data <recipient>`` (a body taken), ``drop``, ``421`` and the greeting
verb (``EHLO``, ``LHLO``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import time
from dataclasses import dataclass, field

#: LMTP replies by recipient local part; others get ``250 2.1.5 <recipient> delivered``.
LMTP_REPLIES = {
    "full": "452 4.2.2 mailbox full",
    "nouser": "550 5.1.1 no such user",
}


@dataclass
class Host:
    """One MX host: its loopback address and what it does."""

    address: str
    script: list[str] = field(default_factory=list)
    banner: str = "220 mx.farm.test ESMTP"
    lmtp: bool = False
    #: the reply to RSET (the session goes on whatever it says)
    rset_reply: str = "250 2.0.0 ok"
    #: offer STARTTLS (a self-signed certificate)
    starttls: bool = False


@dataclass
class MxFarm:
    """Start with ``async with MxFarm({...})``; every host listens on :attr:`port`."""

    hosts: dict[str, Host]
    port: int = 0
    events: list[tuple[str, str]] = field(default_factory=list)
    #: ``time.monotonic()`` of each connection, in order
    connected_at: list[float] = field(default_factory=list)
    _servers: list[asyncio.base_events.Server] = field(default_factory=list)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def __aenter__(self) -> MxFarm:
        for _ in range(20):  # another process may hold the port on one of the addresses
            try:
                await self._listen()
                return self
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                await self._close()
                self.port = 0
        raise RuntimeError("no port free on every farm address")

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    def connections(self, name: str) -> int:
        return sum(1 for host, event in self.events if host == name and event == "connect")

    def order(self) -> list[str]:
        """The hosts connected to, in order."""
        return [host for host, event in self.events if event == "connect"]

    async def _listen(self) -> None:
        for name, host in self.hosts.items():
            server = await asyncio.start_server(
                lambda r, w, name=name: self._session(name, r, w), host.address, self.port
            )
            self._servers.append(server)
            self.port = server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self._servers.clear()

    async def _session(
        self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._writers.add(writer)
        self.events.append((name, "connect"))
        self.connected_at.append(time.monotonic())
        try:
            await _Session(self, name, self.hosts[name], reader, writer).run()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


class _Session:
    def __init__(
        self,
        farm: MxFarm,
        name: str,
        host: Host,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.farm, self.name, self.host = farm, name, host
        self.reader, self.writer = reader, writer
        self.recipients: list[str] = []
        self.tls = False

    async def say(self, line: str) -> None:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()

    async def run(self) -> None:
        await self.say(self.host.banner)
        refusing = not self.host.banner.startswith("220")
        while line := (await self.reader.readline()).decode().rstrip("\r\n"):
            verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
            if verb == "QUIT":
                await self.say("221 2.0.0 bye")
                return
            if refusing:
                await self.say("503 5.5.1 no service here")
            elif not await self.command(verb, line):
                return

    async def command(self, verb: str, line: str) -> bool:
        """Answer one command; False ends the session."""
        if verb in ("EHLO", "LHLO"):
            self.farm.events.append((self.name, verb))
            if (verb == "LHLO") != self.host.lmtp:
                await self.say(f"500 5.5.1 {verb} is not this server's greeting")
            else:
                tls = "250-STARTTLS\r\n" if self.host.starttls and not self.tls else ""
                await self.say(f"250-mx.farm.test\r\n{tls}250-PIPELINING\r\n250 8BITMIME")
        elif verb == "STARTTLS" and self.host.starttls and not self.tls:
            from kumocore.reception.tls import server_context

            await self.say("220 2.0.0 go ahead")
            await self.writer.start_tls(server_context("mx.farm.test"))
            self.tls = True
            self.farm.events.append((self.name, "STARTTLS"))
        elif verb == "MAIL":
            self.recipients = []
            await self.say("250 2.1.0 ok")
        elif verb == "RCPT":
            self.recipients.append(line.partition(":")[2].strip().strip("<>"))
            await self.say("250 2.1.5 ok")
        elif verb == "RSET":
            await self.say(self.host.rset_reply)
        elif verb == "NOOP":
            await self.say("250 2.0.0 ok")
        elif verb == "DATA":
            await self.say("354 go ahead")
            while (await self.reader.readline()) not in (b".\r\n", b""):
                pass
            return await self.end_of_data()
        else:
            await self.say("502 5.5.2 not here")
        return True

    async def end_of_data(self) -> bool:
        step = self.host.script.pop(0) if self.host.script else "ok"
        if step == "drop":
            self.farm.events.append((self.name, "drop"))
            return False
        if step == "421":
            self.farm.events.append((self.name, "421"))
            await self.say("421 4.3.2 closing the session")
            return False
        for recipient in self.recipients:
            self.farm.events.append((self.name, f"data {recipient}"))
            if self.host.lmtp:  # RFC 2033 4.2: one reply per accepted recipient
                local = recipient.split("@", 1)[0]
                await self.say(LMTP_REPLIES.get(local, f"250 2.1.5 <{recipient}> delivered"))
        if not self.host.lmtp:
            await self.say("250 2.0.0 queued")
        return True
