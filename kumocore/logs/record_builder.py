"""Building log records: a snapshot of the message an event is about, and the record.

:class:`Subject` is what a record says about its message, taken when the event happens
(meta copied, only the headers some sink selects kept), so that a policy changing the
message afterwards does not change the record. :func:`build_record` puts a subject and
the facts of one event into a :class:`~kumocore.logs.record.LogRecord`;
:func:`make_record` does both for a message.

Its own module because it is how records come to be, apart from what a record is and how
it is written out (:mod:`kumocore.logs.record`, KumoMTA's format). The node's own records
are built by :class:`kumocore.logs.journal.Journal` with these.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from kumocore.logs.record import LogRecord, PeerAddress, RecordType
from kumocore.logs.select import HeaderPairs, capture_headers
from kumocore.mail.response import Response


class MessageLike(Protocol):
    """What a record needs from :class:`kumocore.mail.message.Message` (structural typing)."""

    @property
    def id(self) -> str: ...
    @property
    def sender(self) -> object: ...
    @property
    def recipient(self) -> object: ...
    @property
    def meta(self) -> Mapping[str, Any]: ...
    @property
    def created(self) -> float: ...
    @property
    def num_attempts(self) -> int: ...
    @property
    def size(self) -> int: ...

    def get_all_headers(self) -> list[tuple[str, str]]: ...


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return MappingProxyType(dict(mapping)) if mapping else None


@dataclass(frozen=True, slots=True)
class Subject:
    """What a record says about its message, snapshot when the event happens.

    A refused transaction (``Rejection``) has no message: its subject is just the
    envelope seen so far and the connection meta (empty id, no size, no headers).
    """

    id: str
    sender: str
    recipient: str | tuple[str, ...]
    meta: Mapping[str, Any]
    created: float
    num_attempts: int = 0
    size: int = 0
    header_pairs: HeaderPairs = ()

    @classmethod
    def of(
        cls,
        message: MessageLike,
        header_names: Sequence[str] = (),
        recipients: Sequence[object] | None = None,
    ) -> Subject:
        """``message`` now: meta is copied (policy may keep changing it after this
        event) and only the headers ``header_names`` could select are kept.
        ``recipients``: the part of a batch the event is about (default: all of it)."""
        if recipients is None:
            # A batch's recipients; an object with only ``recipient`` (a plugin's own
            # message-like) is about one.
            recipients = getattr(message, "recipients", None) or (message.recipient,)
        return cls(message.id, str(message.sender), recipient_field(recipients),
                   MappingProxyType(dict(message.meta)), message.created,
                   message.num_attempts, message.size,
                   capture_headers(message, header_names))


def recipient_field(recipients: Sequence[object]) -> str | tuple[str, ...]:
    """A record's ``recipient``: the address for one, a tuple for several."""
    return str(recipients[0]) if len(recipients) == 1 else tuple(map(str, recipients))


def make_record(
    type: RecordType | str,
    message: MessageLike,
    *,
    header_names: Sequence[str] = (),
    recipients: Sequence[object] | None = None,
    **event: Any,
) -> LogRecord:
    """Snapshot ``message`` into a record (see :func:`build_record` for ``event``).

    ``header_names`` is the union of the sinks' header patterns
    (:attr:`kumocore.logs.dispatch.LogDispatcher.header_names`); leave it empty and the
    message's headers are never read. ``recipients`` names the part of a batch the
    record is about (a delivery's per-recipient outcomes); default all of them. The
    node's own records are built by :class:`kumocore.logs.journal.Journal`.
    """
    return build_record(type, Subject.of(message, header_names, recipients), **event)


def build_record(
    type: RecordType | str,
    subject: Subject,
    *,
    queue: str,
    site: str = "",
    response: Response,
    peer_address: PeerAddress | Mapping[str, Any] | None = None,
    egress_pool: str | None = None,
    egress_source: str | None = None,
    source_address: Mapping[str, Any] | str | None = None,
    delivery_protocol: str | None = None,
    reception_protocol: str | None = None,
    bounce_classification: str = "Uncategorized",
    feedback_report: Mapping[str, Any] | None = None,
    nodeid: str,
    when: float | None = None,
    session_id: str | None = None,
    provider_name: str | None = None,
    tls_cipher: str | None = None,
    tls_protocol_version: str | None = None,
    tls_peer_subject_name: Sequence[str] | None = None,
) -> LogRecord:
    """The record of an event about ``subject`` happening at ``when`` (default now).

    ``reception_protocol`` defaults to the subject's ``reception_protocol`` meta, as in
    KumoMTA. ``peer_address`` may be a ``{name, addr}`` mapping and ``source_address`` a
    plain ``"ip:port"`` (taken as ``{address: ...}``).
    """
    if isinstance(peer_address, Mapping):
        peer_address = PeerAddress(str(peer_address.get("name", "")),
                                   str(peer_address.get("addr", "")),
                                   peer_address.get("is_secure") is True)
    if isinstance(source_address, str):
        source_address = {"address": source_address}
    if reception_protocol is None:
        value = subject.meta.get("reception_protocol")
        reception_protocol = str(value) if value is not None else None
    return LogRecord(
        type=RecordType(type),
        id=subject.id,
        sender=subject.sender,
        recipient=subject.recipient,
        queue=queue,
        site=site,
        size=subject.size,
        response=response,
        peer_address=peer_address,
        timestamp=time.time() if when is None else when,
        created=subject.created,
        num_attempts=subject.num_attempts,
        bounce_classification=bounce_classification,
        egress_pool=egress_pool,
        egress_source=egress_source,
        source_address=_frozen(source_address),
        feedback_report=_frozen(feedback_report),
        meta=subject.meta,
        header_pairs=subject.header_pairs,
        delivery_protocol=delivery_protocol,
        reception_protocol=reception_protocol,
        nodeid=nodeid,
        tls_cipher=tls_cipher,
        tls_protocol_version=tls_protocol_version,
        tls_peer_subject_name=tuple(tls_peer_subject_name) if tls_peer_subject_name else None,
        provider_name=provider_name,
        session_id=session_id,
    )
