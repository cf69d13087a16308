"""A session's connection plan, and what a session does when the MX ends a connection.

As in KumoMTA, a session (one :meth:`SmtpEgressPath.serve
<kumocore.queue.session.SmtpEgressPath.serve>`) resolves its plan once, when it first
connects: every MX address in connection order (lowest preference first, the addresses
of one preference shuffled; see :mod:`kumocore.queue.connect`). Each connection takes
the next address from it. When the MX ends a connection while the session still has
mail for it — the connection broke or timed out during a transaction, the MX said
``421``, or it hung up while the session was idle — the path's ``reconnect_strategy``
says how the session goes on:

``ConnectNextHost`` (the default)
    with the next address of the plan; once the plan is used up the session ends, and
    the next session starts over with a fresh (freshly shuffled) plan.
``ReconnectSameHost``
    with the same address again.
``TerminateSession``
    not at all: the session ends, and the next one starts with a fresh plan.

The message whose transaction was cut off has its outcome like any other (usually a
``TransientFailure``, retried later, the attempt counted). With
``try_next_host_on_transport_error`` a failure that says nothing about the message
itself (see :func:`retry_on_next_host`) is logged as a ``TransientFailure`` without
counting the attempt, and the message goes straight to the session's next connection,
if the strategy leaves one.

kumocore's own bounds, which KumoMTA does not have: a connection that broke without a
reply backs the path off (:mod:`kumocore.queue.backoff`), and the session's next
connection waits that pause out, so a host that breaks every session still costs only
a few connections a minute; and a session sends messages on at once, uncounted, at most
as many times as its plan has addresses (:meth:`ConnectionPlan.retry_now`): KumoMTA's
``ReconnectSameHost`` would send a message to a host that answers every attempt with
``421`` again and again without end.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kumocore.dns.mx import MxTarget
    from kumocore.mail.response import Response

#: The commands of a transaction: a failure in reply to them is about the message
#: (KumoMTA's ``Response::was_due_to_message``), one to any other command (RSET, EHLO)
#: is about the session.
MESSAGE_COMMANDS = frozenset({"MAIL FROM", "RCPT TO", "DATA", "."})


class ConnectionPlan:
    """The MX addresses a session may still connect to, in order."""

    def __init__(self) -> None:
        #: None until the session first connects (then :mod:`kumocore.queue.connect`
        #: resolves the MX addresses into it).
        self.remaining: deque[tuple[MxTarget, str]] | None = None
        #: The address of the session's current (or last) connection.
        self.current: tuple[MxTarget, str] | None = None
        #: Immediate retries (``try_next_host_on_transport_error``) the session may
        #: still make: as many as the plan has addresses.
        self.retries_left = 0

    def resolve(self, candidates: list[tuple[MxTarget, str]]) -> deque[tuple[MxTarget, str]]:
        """Fill the plan with the session's candidates, in connection order."""
        self.remaining = deque(candidates)
        self.retries_left = len(candidates)
        return self.remaining

    def can_go_on(self, strategy: str) -> bool:
        """Whether ``strategy`` lets the session open another connection after its
        current one is lost (nothing changes)."""
        if strategy == "TerminateSession":
            return False
        if strategy == "ReconnectSameHost":
            return self.current is not None
        return bool(self.remaining)

    def retry_now(self, strategy: str) -> bool:
        """Whether a message may go straight to the session's next connection (and if
        so, one of the session's immediate retries is spent on it)."""
        if self.retries_left <= 0 or not self.can_go_on(strategy):
            return False
        self.retries_left -= 1
        return True

    def after_loss(self, strategy: str) -> bool:
        """The current connection is gone: apply ``strategy`` to the plan; whether the
        session may open another connection."""
        if not self.can_go_on(strategy):
            if self.remaining is not None:
                self.remaining.clear()
            return False
        if strategy == "ReconnectSameHost":
            assert self.current is not None and self.remaining is not None
            self.remaining.appendleft(self.current)
        return True


def retry_on_next_host(response: Response) -> bool:
    """Whether a transient ``response`` is one that ``try_next_host_on_transport_error``
    retries at once on the next connection, as KumoMTA decides: a ``421`` (the MX is
    closing the session; kumocore's timeouts are ``421 4.4.2`` too, as KumoMTA's are)
    or a failure in reply to a command that is not part of the transaction (a refused
    or cut-off RSET). A failure of MAIL, RCPT, DATA or the final dot, and one that
    names no command, is about the message: it waits for its retry."""
    if response.code == 421:
        return True
    command = response.command
    return command is not None and command not in MESSAGE_COMMANDS
