"""The steps a transaction's envelope shares, whatever its number of recipients: the
RSET before it (one in the pipelined write, or alone), the reset after a refusal, and
the lone dot that ends a ``DATA`` the MX took although the envelope failed.

:class:`EnvelopeSteps` is a base of ``SmtpClientConnection``, between the batch
transactions (:mod:`kumocore.delivery.client_batch`) and the session's set-up
(:class:`~kumocore.delivery.client_setup.SessionSetup`); the one-recipient ``send()``
and ``send_batch()`` both build on it.
"""

from __future__ import annotations

from kumocore.delivery.client_io import path_timeout
from kumocore.delivery.client_setup import SessionSetup
from kumocore.mail.response import Response


class EnvelopeSteps(SessionSetup):
    """The envelope's shared steps (see the module doc)."""

    async def _write_pipelined(self, commands: list[str], rset: bool) -> Response | None:
        """Write ``commands`` (MAIL FROM, RCPT TO..., DATA) in one go, behind an RSET
        when ``rset``; the RSET's refusal, None when it was not sent or took 250."""
        self._write((("RSET\r\n" if rset else "") + "\r\n".join(commands) + "\r\n").encode())
        self.replies.command = "RSET" if rset else "MAIL FROM"
        await self._drain(path_timeout(self.path, "mail_from_timeout", 300),
                          ("RSET, " if rset else "") + "MAIL FROM, RCPT TO, DATA")
        return await self._read_rset() if rset else None

    async def _rset_alone(self, rset: bool) -> Response | None:
        """RSET as a command of its own when ``rset`` (no PIPELINING); its refusal, as
        :meth:`_write_pipelined` returns it."""
        if not rset:
            return None
        self._write(b"RSET\r\n")
        await self._drain(path_timeout(self.path, "rset_timeout", 5), "RSET")
        return await self._read_rset()

    async def _read_rset(self) -> Response | None:
        """The RSET reply before a transaction: None when it is 250, else that reply (its
        ``command`` RSET), which becomes the message's response as KumoMTA makes it."""
        reply = await self.replies.read("RSET", path_timeout(self.path, "rset_timeout", 5))
        return None if reply.code == 250 else reply

    async def _end_empty_data(self) -> None:
        """RFC 2920 3.1: the MX took a pipelined DATA although no recipient was accepted
        (or MAIL FROM was refused): end that empty message with a lone dot, never with
        commands it would read as data."""
        self._write(b".\r\n")
        timeout = path_timeout(self.path, "data_dot_timeout", 300)
        await self._drain(timeout, None)
        await self.replies.read(".", timeout)

    async def _reset(self) -> None:
        """RSET after a refused envelope, at once (kumocore's choice: the next
        transaction, if any, then starts clean without one)."""
        try:
            reply = await self._command("RSET", "RSET", path_timeout(self.path, "rset_timeout", 5))
        except Exception as exc:
            self._lost(exc)
            return
        if reply.code != 250:  # the session is not in a state we know: start afresh
            self.abort()
            return
        self._rset_next = False
