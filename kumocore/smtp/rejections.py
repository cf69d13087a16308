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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kumocore.logs.record import PeerAddress, RecordType, make_record
from kumocore.response import Response
from kumocore.smtp.reports import classify

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kumocore.runtime import Runtime
    from kumocore.smtp.session import EsmtpSession


@dataclass(frozen=True, slots=True)
class _Refused:
    """What ``make_record`` needs to know about the refused transaction."""

    sender: str
    recipient: str
    meta: Mapping[str, Any]
    created: float = field(default_factory=time.time)
    id: str = ""
    num_attempts: int = 0
    size: int = 0

    def get_first_named_header_value(self, name: str) -> str | None:
        return None

    def get_all_headers(self) -> list[tuple[str, str]]:
        return []


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
_PENDING: set[asyncio.Task[None]] = set()


def log_rejection(session: EsmtpSession, code: int, text: str) -> None:
    """Log the reply ``code text`` sent on ``session`` as a ``Rejection`` record.

    The session's state is captured now; the record is classified (KumoMTA classifies
    Rejection records) and submitted in the background, so a slow classifier never
    delays the reply.
    """
    txn = session.txn
    sender = txn.sender.email if txn is not None else ""
    recipient = txn.recipients[-1].email if txn is not None and txn.recipients else ""
    refused = _Refused(sender, recipient, dict(session.conn_meta))
    response = Response.parse(code, text, command=session.command or None)
    peer = PeerAddress(session.ehlo_domain or "", session.peer_ip)
    task = asyncio.ensure_future(
        _submit(session.runtime, refused, response, peer, session.session_id))
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


async def _submit(
    runtime: Runtime, refused: _Refused, response: Response, peer: PeerAddress,
    session_id: str,
) -> None:
    if runtime.logs is None:
        return
    runtime.logs.submit(make_record(
        RecordType.Rejection, refused, queue="", response=response, peer_address=peer,
        nodeid=runtime.nodeid, session_id=session_id, when=refused.created,
        bounce_classification=await classify(runtime, response)))
