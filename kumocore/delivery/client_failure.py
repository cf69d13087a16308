"""How an outbound SMTP session that failed is told: :class:`ConnectFailure` for a
connection that could not be set up, :func:`failure_response` for a session that a
failure on the wire ended (both used by :mod:`kumocore.delivery.client`).

Every failure becomes a transient (4xx) :class:`~kumocore.mail.response.Response` in
KumoMTA's words, with :func:`failure_reason` saying in one line what went wrong.
"""

from __future__ import annotations

import ssl

from kumocore.delivery.wire import ReplyError, WriteTimeout
from kumocore.mail.internal_responses import (
    PAYLOAD_TIMED_OUT,
    debug_duration,
    send_failed,
    send_timed_out,
    send_write_timed_out,
)
from kumocore.mail.response import Response


class ConnectFailure(Exception):
    """The connection or its greeting/EHLO/STARTTLS failed; ``response`` says how.
    ``tls_broken``: the TLS handshake, or the EHLO after it, failed (for
    ``remember_broken_tls`` and ``opportunistic_tls_reconnect_on_failed_handshake``).
    ``reason``: the one-line account of this host's failure that goes into the
    connection-failure response (:func:`kumocore.mail.internal_responses.connect_failed`):
    the peer's reply as it came, or kumocore's own text without a made-up code.
    ``source_failure``: the failure is the egress source's, of this kind
    (:mod:`kumocore.delivery.source_failure`). ``counted_as``: KumoMTA's counter the
    failure moves (``bind_failures``, ``proxy_connection_failures``), if any."""

    def __init__(
        self,
        response: Response,
        *,
        tls_broken: bool = False,
        reason: str | None = None,
        source_failure: str | None = None,
        counted_as: str | None = None,
    ) -> None:
        super().__init__(response.to_single_line())
        self.response = response
        self.tls_broken = tls_broken
        self.reason = reason if reason is not None else response.content
        self.source_failure = source_failure
        self.counted_as = counted_as

    @classmethod
    def refused(cls, reply: Response) -> ConnectFailure:
        """The peer refused the session with ``reply`` (to the banner, EHLO, STARTTLS)."""
        return cls(reply, reason=f"{reply.command} reply: {reply.to_single_line()}")


def failure_reason(exc: BaseException, command: str, timeout: float) -> str:
    """What went wrong when ``exc`` ended a session during ``command``, in words."""
    detail = str(exc)[:200]
    if isinstance(exc, WriteTimeout):
        return f"Timed Out after {debug_duration(exc.timeout)} writing {exc.commands or command}"
    if isinstance(exc, TimeoutError):
        return f"Timed Out waiting {debug_duration(timeout)} for response to {command}"
    if isinstance(exc, ReplyError):
        return f"protocol violation by the MX during {command}: {detail}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error during {command}: {detail}"
    if isinstance(exc, (OSError, EOFError)):
        return f"connection lost during {command}: {detail}"
    # a bug or an exception nobody foresaw: still only this attempt fails
    return f"client error during {command}: {type(exc).__name__}: {detail}"


def failure_response(
    exc: BaseException, command: str, *, site: str, peer: str, timeout: float
) -> Response:
    """The transient response that stands for ``exc`` ending a session during
    ``command`` (KumoMTA's: ``421 4.4.2`` for a timeout, else ``400`` without enhanced
    code, both ``KumoMTA internal: failed to send message ...``). A write that timed
    out is told apart as KumoMTA does: ``to write <commands>``, or for the body a
    ``400`` ``Timed Out sending message payload data``."""
    if isinstance(exc, WriteTimeout):
        if exc.commands is None:
            return PAYLOAD_TIMED_OUT
        return send_write_timed_out(site, peer, exc.timeout, exc.commands)
    if isinstance(exc, TimeoutError):
        return send_timed_out(site, peer, timeout, command)
    return send_failed(failure_reason(exc, command, timeout), command)
