"""How a node admits new work, seen from outside: the SMTP banner an untrusted peer
(127.0.0.5) gets, an HTTP injection's answer, and liveness."""

from __future__ import annotations

import smtplib

import aiohttp

from kumocore.testing.node import Node

PEER = "127.0.0.5"


def connect_from_peer(port: int) -> tuple[int, str]:
    """The banner an untrusted peer gets: ``(220, "connected")`` when let in, else the
    refusal's code and text."""
    try:
        with smtplib.SMTP("127.0.0.1", port, source_address=(PEER, 0), timeout=10) as client:
            client.noop()
    except smtplib.SMTPConnectError as exc:
        return exc.smtp_code, exc.smtp_error.decode()
    return 220, "connected"


async def inject(node: Node, recipient: str) -> tuple[int, object]:
    body = {
        "envelope_sender": "s@example.org",
        "recipients": [{"email": recipient}],
        "content": "Subject: hi\r\n\r\nhello\r\n",
    }
    return await node.inject(body)


async def liveness(node: Node) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(node.http_url + "/api/check-liveness/v1") as response,
    ):
        return response.status, await response.text()
