"""What a test does with a running :class:`~kumocore.testing.node.Node`: send it mail over
SMTP, call its HTTP API (injection, admin), and read or wait for its log records.

Its own module because it is the client's side of the node: it only needs the node's
listener addresses and its recording log sink, not how the node is started and stopped
(:mod:`kumocore.testing.node`, whose :class:`Node` has this class as its base, so these
methods are called on the node as before).
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Iterable, Mapping
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kumocore.testing.logs import RecordingLogSink


class NodeClient:
    """The client half of :class:`kumocore.testing.node.Node` (see the module doc)."""

    if TYPE_CHECKING:  # Node's parts, for the type checker only
        log_sink: RecordingLogSink

        @property
        def smtp_port(self) -> int: ...
        @property
        def http_url(self) -> str: ...

    __slots__ = ()

    async def send(
        self,
        sender: str = "sender@example.org",
        recipients: str | Iterable[str] = "recipient@example.com",
        message: str | bytes | EmailMessage | None = None,
        *,
        subject: str = "test",
        source_address: str = "127.0.0.1",
    ) -> dict[str, tuple[int, bytes]]:
        """Send one message to the ESMTP listener with :mod:`smtplib` (in a thread, so the
        node keeps serving). Returns smtplib's refused recipients (empty: all accepted);
        raises :class:`smtplib.SMTPException` when the message is refused."""
        rcpts = [recipients] if isinstance(recipients, str) else list(recipients)
        if message is None:
            message = f"From: {sender}\r\nTo: {', '.join(rcpts)}\r\nSubject: {subject}\r\n" \
                      f"\r\nhello from kumocore.testing\r\n"
        if isinstance(message, EmailMessage):
            message = message.as_bytes()
        port = self.smtp_port

        def send() -> dict[str, tuple[int, bytes]]:
            with smtplib.SMTP("127.0.0.1", port, source_address=(source_address, 0),
                              timeout=30) as client:
                return client.sendmail(sender, rcpts, message)

        return await asyncio.to_thread(send)

    async def inject(self, body: Mapping[str, Any]) -> tuple[int, Any]:
        """POST ``body`` to ``/api/inject/v1``; returns (status, JSON answer)."""
        return await self.admin("POST", "/api/inject/v1", body)

    async def hold(self, reason: str = "held by kumocore.testing") -> str:
        """Suspend every queue for a day through the admin API (``/api/admin/suspend/v1``):
        messages are then accepted, spooled and queued but not delivered. Returns the
        suspension's id (cancel it with ``DELETE`` on the same path)."""
        status, answer = await self.admin("POST", "/api/admin/suspend/v1",
                                          {"reason": reason, "duration": "1d"})
        if status != 200:
            raise RuntimeError(f"suspending every queue failed: {status} {answer}")
        return str(answer["id"])

    async def admin(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> tuple[int, Any]:
        """Call the node's HTTP API (from 127.0.0.1); returns (status, JSON or text)."""
        import aiohttp

        async with aiohttp.ClientSession() as session, session.request(
                method, self.http_url + path, json=None if body is None else dict(body),
        ) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    def logs(self, *types: str, **fields: Any) -> list[dict[str, Any]]:
        """Log records so far as KumoMTA JSON (all meta), filtered by type and fields."""
        return self.log_sink.parsed(*types, **fields)

    async def wait_for(
        self, *types: str, count: int = 1, timeout: float = 10.0, **fields: Any
    ) -> list[dict[str, Any]]:
        """Wait for ``count`` log records of ``types`` matching ``fields`` (e.g.
        ``await node.wait_for("Delivery", recipient="a@example.com")``)."""
        return await self.log_sink.wait_for(*types, count=count, timeout=timeout, **fields)
