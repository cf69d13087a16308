"""A small LMTP server (RFC 2033) on a unix-domain socket, for delivery tests.

Each recipient's local part decides its reply after the dot: ``nouser`` is refused with
``550``, ``full`` deferred with ``451``, anything else accepted with ``250``. The
server records the commands it was sent (``events``) and the bodies it took.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import TracebackType

#: Per local part: the reply after the dot (default ``250``).
REPLIES = {
    "nouser": b"550 5.1.1 <{rcpt}> no such mailbox\r\n",
    "full": b"451 4.2.2 <{rcpt}> mailbox over quota, try later\r\n",
}
ACCEPTED = b"250 2.0.0 <{rcpt}> delivered\r\n"


class UnixLmtpServer:
    """``async with UnixLmtpServer(path) as server``: listening at ``path``."""

    def __init__(self, path: Path, *, starttls: bool = False) -> None:
        self.path = path
        self.starttls = starttls  # advertise STARTTLS (it is then refused with 454)
        self.events: list[str] = []
        self.delivered: list[str] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> UnixLmtpServer:
        self._server = await asyncio.start_unix_server(self._session, path=str(self.path))
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.events.append("connect")
        writer.write(b"220 lmtp.test LMTP ready\r\n")
        recipients: list[str] = []
        try:
            while line := await reader.readline():
                verb = line.split(b" ", 1)[0].split(b":", 1)[0].strip().upper().decode()
                self.events.append(verb)
                if verb == "LHLO":
                    tls = b"250-STARTTLS\r\n" if self.starttls else b""
                    writer.write(b"250-lmtp.test\r\n" + tls + b"250 ENHANCEDSTATUSCODES\r\n")
                elif verb == "EHLO":
                    writer.write(b"500 5.5.1 this is an LMTP server\r\n")
                elif verb == "STARTTLS":
                    writer.write(b"454 4.7.0 TLS not available\r\n")
                elif verb == "MAIL":
                    recipients = []
                    writer.write(b"250 2.1.0 ok\r\n")
                elif verb == "RCPT":
                    recipients.append(line.split(b"<", 1)[1].split(b">", 1)[0].decode())
                    writer.write(b"250 2.1.5 ok\r\n")
                elif verb == "DATA":
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    while (await reader.readline()) not in (b".\r\n", b""):
                        pass
                    for rcpt in recipients:  # RFC 2033: one reply per recipient
                        reply = REPLIES.get(rcpt.split("@")[0], ACCEPTED)
                        if reply is ACCEPTED:
                            self.delivered.append(rcpt)
                        writer.write(reply.replace(b"{rcpt}", rcpt.encode()))
                elif verb == "RSET":
                    writer.write(b"250 2.0.0 ok\r\n")
                elif verb == "QUIT":
                    writer.write(b"221 2.0.0 bye\r\n")
                    break
                else:
                    writer.write(b"500 5.5.1 unknown command\r\n")
                await writer.drain()
        except (ConnectionError, IndexError):
            pass
        finally:
            writer.close()
