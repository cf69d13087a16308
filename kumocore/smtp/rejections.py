"""``Rejection`` log records: every 4xx/5xx reply the listener sends, as KumoMTA logs it.

Operators watch these to see what their listeners refuse and why (KumoMTA's integration
tests count them on the receiving side). Like KumoMTA, the record has no message id,
carries the connection meta, the envelope seen so far (sender, last recipient) and the
command being answered — for AUTH only its mechanism, never the credentials.

One connection logs at most :data:`RECORDS_IN_FULL` records one by one; the rest are
only counted, and when the connection ends one more record carries its last refusal and
that count (:class:`RejectionLog`). A client pipelining refused commands can then never
flood the log dispatcher.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from kumocore.logs.record import PeerAddress
from kumocore.response import Response

if TYPE_CHECKING:
    from kumocore.logs.dispatch import Ticket
    from kumocore.smtp.session import EsmtpSession


#: Rejection records logged one by one per connection.
RECORDS_IN_FULL = 50


class RejectionLog:
    """The Rejection records of one connection: the first ones in full, then a count."""

    __slots__ = ("last", "logged", "unlogged")

    def __init__(self) -> None:
        self.logged = 0
        self.unlogged = 0
        self.last: tuple[int, str, str] | None = None  # code, text, command

    def add(self, session: EsmtpSession, code: int, text: str) -> None:
        """Log the reply ``code text`` now, or count it once the quota is used."""
        self.last = (code, text, session.command)
        if self.logged >= RECORDS_IN_FULL:
            self.unlogged += 1
            return
        self.logged += 1
        log_rejection(session, code, text)

    def summarize(self, session: EsmtpSession) -> None:
        """At the end of the connection: one record for the refusals not logged."""
        if not self.unlogged or self.last is None:
            return
        code, text, session.command = self.last
        log_rejection(session, code, f"{text} (and {self.unlogged} more rejections on this "
                      "connection not logged one by one)")
        self.unlogged = 0


#: Classification tasks in flight (a task nobody references may be garbage collected).
_PENDING: set[asyncio.Task[Ticket | None]] = set()


def log_rejection(session: EsmtpSession, code: int, text: str) -> None:
    """Log the reply ``code text`` sent on ``session`` as a ``Rejection`` record.

    The session's state is captured now; the record is classified (KumoMTA classifies
    Rejection records) and submitted in the background, so a slow classifier never
    delays the reply.
    """
    txn = session.txn
    task = asyncio.ensure_future(session.runtime.journal.rejection(
        sender=txn.sender.email if txn is not None else "",
        recipient=txn.recipients[-1].email if txn is not None and txn.recipients else "",
        meta=dict(session.conn_meta),  # now: the task runs later
        response=Response.parse(code, text, command=session.command or None),
        peer=PeerAddress(session.ehlo_domain or "", session.peer_ip),
        session_id=session.session_id, when=time.time()))
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)
