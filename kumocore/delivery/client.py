"""The outbound SMTP client: one connection to one MX address, reused for many messages.

Written on asyncio streams rather than aiosmtplib because bulk delivery wants client-side
PIPELINING (MAIL, RCPT and DATA in one round trip), which aiosmtplib does not do. Message
bodies are re-canonicalised to CRLF and dot-stuffed here, so kumocore never emits an SMTP
smuggling payload whatever it received.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

from kumocore.delivery.wire import ReplyReader, dot_stuff, drain_needed
from kumocore.response import Response

if TYPE_CHECKING:
    from kumocore.config import EgressPathConfig


class ConnectFailure(Exception):
    """The connection or its greeting/EHLO/STARTTLS failed; ``response`` says how."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.to_single_line())
        self.response = response


def _timeout(path: EgressPathConfig, name: str, default: float) -> float:
    value = getattr(path, name, None)
    return float(value) if value is not None else default


def _tls_context(mode: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if mode.endswith("Insecure"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class SmtpClientConnection:
    """An open, greeted SMTP session ready for transactions."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        mx_host: str,
        address: str,
        path: EgressPathConfig,
    ) -> None:
        self.replies = ReplyReader(reader)
        self.writer = writer
        self.path = path
        self.peer = {"name": mx_host, "addr": address}
        local = writer.get_extra_info("sockname")
        self.source_address = f"{local[0]}:{local[1]}" if local else None
        self.extensions: dict[str, str] = {}
        self.tls = False
        self.closed = False
        self.deliveries = 0

    # ---------------------------------------------------------------- primitives
    async def _command(self, line: str, command: str, timeout: float) -> Response:
        self.writer.write(line.encode("utf-8") + b"\r\n")
        if drain_needed(self.writer):  # usually sent already: skip two coroutine frames
            await self.writer.drain()
        return await self.replies.read(command, timeout)

    def _lost(self, command: str, exc: BaseException) -> Response:
        self.closed = True
        self.replies.close()
        self.writer.close()
        reason = "timed out" if isinstance(exc, TimeoutError) else f"connection lost: {exc}"
        return Response.parse(421, f"4.4.2 {reason} during {command}", command=command)

    # ---------------------------------------------------------------- session set-up
    async def greet(self, ehlo_domain: str) -> None:
        banner = await self.replies.read("banner", _timeout(self.path, "banner_timeout", 60))
        if banner.code != 220:
            raise ConnectFailure(banner)
        await self._ehlo(ehlo_domain)
        mode = str(getattr(self.path, "enable_tls", "Opportunistic"))
        if mode != "Disabled" and "STARTTLS" in self.extensions:
            await self._starttls(mode, ehlo_domain)
        elif mode.startswith("Required"):
            raise ConnectFailure(
                Response.parse(
                    451, "4.7.4 TLS is required for this path but the peer does not offer it"
                )
            )

    async def _ehlo(self, ehlo_domain: str) -> None:
        reply = await self._command(
            f"EHLO {ehlo_domain}", "EHLO", _timeout(self.path, "ehlo_timeout", 300)
        )
        if reply.code != 250:
            raise ConnectFailure(reply)
        self.extensions = self.replies.last_extensions

    async def _starttls(self, mode: str, ehlo_domain: str) -> None:
        reply = await self._command(
            "STARTTLS", "STARTTLS", _timeout(self.path, "starttls_timeout", 5)
        )
        if reply.code != 220:
            if mode.startswith("Required"):
                raise ConnectFailure(reply)
            return
        try:
            await asyncio.wait_for(
                self.writer.start_tls(_tls_context(mode), server_hostname=self.peer["name"]),
                _timeout(self.path, "starttls_timeout", 5),
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            raise ConnectFailure(
                Response.parse(421, f"4.7.5 TLS handshake with {self.peer['name']} failed: {exc}")
            ) from exc
        self.replies.reset()  # nothing read before the handshake may be trusted
        self.tls = True
        await self._ehlo(ehlo_domain)

    # ---------------------------------------------------------------- transactions
    async def send(self, sender: str, recipient: str, data: bytes) -> Response:
        """Run one transaction; the reply that decided it (never raises for SMTP errors)."""
        command = "MAIL FROM"
        try:
            if "PIPELINING" in self.extensions and getattr(self.path, "enable_pipelining", True):
                reply = await self._pipelined_envelope(sender, recipient)
            else:
                reply = await self._serial_envelope(sender, recipient)
            if reply.code != 354:
                await self._reset()
                return reply
            command = "."
            self.writer.write(dot_stuff(data))
            if drain_needed(self.writer):
                await self.writer.drain()
            final = await self.replies.read(".", _timeout(self.path, "data_dot_timeout", 300))
            self.deliveries += 1
            return final
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            return self._lost(command, exc)

    async def _pipelined_envelope(self, sender: str, recipient: str) -> Response:
        self.writer.write(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode())
        if drain_needed(self.writer):
            await self.writer.drain()
        mail = await self.replies.read("MAIL FROM", _timeout(self.path, "mail_from_timeout", 300))
        rcpt = await self.replies.read("RCPT TO", _timeout(self.path, "rcpt_to_timeout", 300))
        data = await self.replies.read("DATA", _timeout(self.path, "data_timeout", 300))
        if mail.code != 250:
            return mail
        if rcpt.code not in (250, 251):
            return rcpt
        return data

    async def _serial_envelope(self, sender: str, recipient: str) -> Response:
        mail = await self._command(
            f"MAIL FROM:<{sender}>", "MAIL FROM", _timeout(self.path, "mail_from_timeout", 300)
        )
        if mail.code != 250:
            return mail
        rcpt = await self._command(
            f"RCPT TO:<{recipient}>", "RCPT TO", _timeout(self.path, "rcpt_to_timeout", 300)
        )
        if rcpt.code not in (250, 251):
            return rcpt
        return await self._command("DATA", "DATA", _timeout(self.path, "data_timeout", 300))

    async def _reset(self) -> None:
        try:
            await self._command("RSET", "RSET", _timeout(self.path, "rset_timeout", 5))
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            self.closed = True

    async def close(self) -> None:
        self.replies.close()
        if not self.closed:
            self.closed = True
            try:
                self.writer.write(b"QUIT\r\n")
                await asyncio.wait_for(self.writer.drain(), 2)
            except (OSError, TimeoutError, ConnectionError):
                pass
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except (OSError, TimeoutError, ConnectionError, ssl.SSLError):
            pass


async def open_connection(
    *,
    mx_host: str,
    address: str,
    port: int,
    source_address: str | None,
    ehlo_domain: str,
    path: EgressPathConfig,
) -> SmtpClientConnection:
    """Connect (from ``source_address`` when set), read the banner, EHLO, maybe STARTTLS."""
    local = (source_address, 0) if source_address else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port, local_addr=local),
            _timeout(path, "connect_timeout", 60),
        )
    except (OSError, TimeoutError) as exc:
        raise ConnectFailure(
            Response.parse(451, f"4.4.1 connection to {mx_host} [{address}]:{port} failed: {exc}")
        ) from exc
    conn = SmtpClientConnection(reader, writer, mx_host, address, path)
    try:
        await conn.greet(ehlo_domain)
    except ConnectFailure:
        await conn.close()
        raise
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
        await conn.close()
        raise ConnectFailure(conn._lost("banner", exc)) from exc
    return conn
