"""A recording SMTP sink that holds the first transaction it sees.

Its first ``RCPT TO`` gets no answer until :attr:`HoldFirstRcpt.release` is set (or 30 s
pass), so a delivery connection of the node under test sits in the middle of a
transaction; every later ``RCPT TO`` is answered at once and recorded as usual.
"""

from __future__ import annotations

import asyncio

from aiosmtpd.smtp import SMTP, Envelope, Session

from kumocore.testing.smtp_sink import RecordingSink, SinkState, _Handler, _SinkSMTP


class HoldFirstRcpt(_Handler):
    """Holds the first RCPT TO unanswered (until released), so a connection of the node
    sits in a transaction; every later RCPT is answered at once."""

    def __init__(self, state: SinkState) -> None:
        super().__init__(state)
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self.held = 0

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:  # fmt: skip
        if self.held == 0:
            self.held += 1
            self.holding.set()
            await asyncio.wait_for(self.release.wait(), 30)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


class HoldingSink(RecordingSink):
    """The recording sink with :class:`HoldFirstRcpt` as its handler."""

    async def start(self) -> HoldingSink:
        self.handler = HoldFirstRcpt(self.state)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _SinkSMTP(self.handler, hostname="sink.test", decode_data=False),
            self.host, self.port)  # fmt: skip
        self.port = self._server.sockets[0].getsockname()[1]
        return self
