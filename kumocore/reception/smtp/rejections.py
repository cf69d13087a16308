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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from kumocore.logs.record import PeerAddress
from kumocore.mail.response import Response

if TYPE_CHECKING:
    from kumocore.logs.dispatch import Ticket
    from kumocore.mail.address import EnvelopeAddress
    from kumocore.node.runtime import Runtime


class _Envelope(Protocol):
    @property
    def sender(self) -> EnvelopeAddress: ...
    @property
    def recipients(self) -> Sequence[EnvelopeAddress]: ...


class Refusing(Protocol):
    """What a Rejection record reads of the session (structural: the session uses this
    module, not the other way round)."""

    @property
    def runtime(self) -> Runtime: ...
    @property
    def txn(self) -> _Envelope | None: ...
    @property
    def conn_meta(self) -> Mapping[str, Any]: ...
    @property
    def command(self) -> str: ...
    @property
    def ehlo_domain(self) -> str | None: ...
    @property
    def peer_ip(self) -> str: ...
    @property
    def session_id(self) -> str: ...


#: Rejection records logged one by one per connection.
RECORDS_IN_FULL = 50


class RejectionLog:
    """The Rejection records of one connection: the first ones in full, then a count."""

    __slots__ = ("last", "logged", "unlogged")

    def __init__(self) -> None:
        self.logged = 0
        self.unlogged = 0
        self.last: tuple[int, str, str] | None = None  # code, text, command

    def add(self, session: Refusing, code: int, text: str) -> None:
        """Log the reply ``code text`` now, or count it once the quota is used."""
        self.last = (code, text, session.command)
        if self.logged >= RECORDS_IN_FULL:
            self.unlogged += 1
            return
        self.logged += 1
        log_rejection(session, code, text, session.command)

    def summarize(self, session: Refusing) -> None:
        """At the end of the connection: one record for the refusals not logged."""
        if not self.unlogged or self.last is None:
            return
        code, text, command = self.last
        log_rejection(session, code, f"{text} (and {self.unlogged} more rejections on this "
                      "connection not logged one by one)", command)
        self.unlogged = 0


#: Classification tasks in flight (a task nobody references may be garbage collected).
_PENDING: set[asyncio.Task[Ticket | None]] = set()


def log_rejection(session: Refusing, code: int, text: str, command: str) -> None:
    """Log the reply ``code text`` to ``command`` on ``session`` as a ``Rejection``.

    The session's state is captured now; the record is classified (KumoMTA classifies
    Rejection records) and submitted in the background, so a slow classifier never
    delays the reply.
    """
    txn = session.txn
    task = asyncio.ensure_future(session.runtime.journal.rejection(
        sender=txn.sender.email if txn is not None else "",
        recipient=txn.recipients[-1].email if txn is not None and txn.recipients else "",
        meta=dict(session.conn_meta),  # now: the task runs later
        response=Response.parse(code, text, command=command or None),
        peer=PeerAddress(session.ehlo_domain or "", session.peer_ip),
        session_id=session.session_id, when=time.time()))
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)
