"""The node's log journal: every record kumocore writes about a message is made here.

Callers say what happened and pass what they know (the message, the reply, the peer);
the journal adds what is the same for every record of this node — its ``nodeid``, the
headers the sinks select (``header_names``), and the bounce classification, which
falls back to ``Uncategorized`` when the classifier fails (KumoMTA classifies every
record type but Reception; a broken classifier must never stop logging).

A journal over no log dispatcher (``kumocore validate``, a runtime before the server
started) writes nothing; it still classifies (the status page shows classifications).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.logs.record import LogRecord, PeerAddress, RecordType
from kumocore.logs.record_builder import MessageLike, Subject, build_record
from kumocore.mail.response import Response

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kumocore.logs.dispatch import LogDispatcher, Ticket

log = structlog.get_logger("kumocore.logs.journal")

#: The policy's bounce classifier (``kumo_classify_bounce``).
Classifier = Callable[[Response], Awaitable[str]]

#: KumoMTA's ``{address, server, protocol}`` (or just ``"ip:port"``) of a connection.
SourceAddress = Mapping[str, Any] | str | None

UNCATEGORIZED = "Uncategorized"


@dataclass(frozen=True, slots=True)
class Attempt:
    """Where a delivery attempt went: the fields of Delivery/Bounce/TransientFailure/
    Expiration records that describe the egress path and the connection."""

    queue: str = ""
    site: str = ""
    egress_pool: str | None = None
    egress_source: str | None = None
    provider_name: str | None = None
    peer: PeerAddress | Mapping[str, str] | None = None
    source_address: SourceAddress = None
    delivery_protocol: str | None = None
    tls_cipher: str | None = None
    tls_protocol_version: str | None = None
    tls_peer_subject_name: Sequence[str] | None = None


class Journal:
    """Builds, classifies and submits the records of one node; see the module docstring."""

    __slots__ = ("_classifier", "logs", "nodeid")

    def __init__(self, logs: LogDispatcher | None, nodeid: str, classifier: Classifier) -> None:
        self.logs = logs
        self.nodeid = nodeid
        self._classifier = classifier

    @property
    def header_names(self) -> tuple[str, ...]:
        return self.logs.header_names if self.logs is not None else ()

    async def classify(self, response: Response) -> str:
        """The bounce classification of ``response``, ``Uncategorized`` if the
        classifier fails."""
        try:
            return await self._classifier(response)
        except Exception as exc:
            log.error("bounce classification failed", error=str(exc))
            return UNCATEGORIZED

    def _subject(self, message: MessageLike) -> Subject:
        return Subject.of(message, self.header_names)

    def _submit(self, type: RecordType, subject: Subject, message: MessageLike | None,
                **event: Any) -> Ticket | None:
        # ``message`` travels with the record for sinks with a filter_event (the policy
        # event is asked about the message itself, as in KumoMTA).
        if self.logs is None:
            return None
        return self.logs.submit(
            build_record(type, subject, nodeid=self.nodeid, **event), message)

    # ------------------------------------------------------------------ reception
    def reception(
        self, message: MessageLike, *, queue: str, peer: PeerAddress, protocol: str
    ) -> Ticket | None:
        """A message was accepted (250) from ``peer`` over ``protocol`` (ESMTP, HTTP)."""
        if self.logs is None:
            return None
        return self._submit(
            RecordType.Reception, self._subject(message), message, queue=queue,
            # KumoMTA's Reception record: 250 with no text and no command, whatever the
            # client was told.
            response=Response(250, ""),
            peer_address=peer, reception_protocol=protocol)

    async def rejection(
        self, *, sender: str, recipient: str, meta: Mapping[str, Any], response: Response,
        peer: PeerAddress, session_id: str, when: float,
    ) -> Ticket | None:
        """A listener refused a command: ``meta`` is the connection's, ``sender`` and
        ``recipient`` the envelope seen so far (KumoMTA's Rejection has no message id)."""
        if self.logs is None:
            return None
        subject = Subject("", sender, recipient, MappingProxyType(dict(meta)), when)
        return self._submit(
            RecordType.Rejection, subject, None, queue="", response=response,
            peer_address=peer,
            session_id=session_id, when=when,
            bounce_classification=await self.classify(response))

    async def feedback(
        self, message: MessageLike, report: Mapping[str, Any], *, queue: str,
        peer: PeerAddress,
    ) -> Ticket | None:
        """``message`` is an ARF feedback report (RFC 5965), parsed into ``report``."""
        if self.logs is None:
            return None
        response = Response(250, "", command=".")
        return self._submit(
            RecordType.Feedback, self._subject(message), message, queue=queue,
            response=response,
            peer_address=peer, reception_protocol="ESMTP", feedback_report=report,
            bounce_classification=await self.classify(response))

    async def oob(
        self, message: MessageLike, *, failed: str, response: Response, queue: str,
        peer: PeerAddress, when: float | None,
    ) -> Ticket | None:
        """``message`` is a DSN saying the delivery to ``failed`` failed with ``response``.

        The record describes that original delivery: its sender is the DSN's envelope
        recipient (the bounce address, i.e. the original return path).
        """
        if self.logs is None:
            return None
        subject = replace(self._subject(message), sender=str(message.recipient),
                          recipient=failed, num_attempts=0, size=0)
        return self._submit(
            RecordType.OOB, subject, message, queue=queue, response=response,
            peer_address=peer,
            reception_protocol="ESMTP", when=when or time.time(),
            bounce_classification=await self.classify(response))

    # ------------------------------------------------------------------ the queue
    def outcome(
        self, kind: RecordType, message: MessageLike, response: Response, attempt: Attempt,
        *, classification: str = UNCATEGORIZED,
        observe: Callable[[LogRecord], None] | None = None,
        recipients: Sequence[str] | None = None,
    ) -> Ticket | None:
        """A Delivery, TransientFailure, Bounce, AdminBounce or Expiration of
        ``message`` (``observe`` sees the record before it is submitted); ``recipients``
        names the part of a batch it is about (default: all of its recipients)."""
        if self.logs is None:
            return None
        subject = (self._subject(message) if recipients is None
                   else Subject.of(message, self.header_names, recipients))
        record = build_record(
            kind, subject, nodeid=self.nodeid, queue=attempt.queue,
            site=attempt.site, response=response, peer_address=attempt.peer,
            egress_pool=attempt.egress_pool, egress_source=attempt.egress_source,
            source_address=attempt.source_address,
            delivery_protocol=attempt.delivery_protocol, tls_cipher=attempt.tls_cipher,
            tls_protocol_version=attempt.tls_protocol_version,
            tls_peer_subject_name=attempt.tls_peer_subject_name,
            provider_name=attempt.provider_name,
            reception_protocol=message.meta.get("reception_protocol"),
            bounce_classification=classification)
        if observe is not None:
            observe(record)
        return self.logs.submit(record, message)

    def delayed(
        self, message: MessageLike, *, queue: str, context: str, due: float
    ) -> Ticket | None:
        """``message`` waits in its scheduled queue ``queue`` until ``due`` for the
        reasons ``context`` names (``Delayed``). As KumoMTA's: no site, pool, source or
        peer, and no bounce classification (the response is kumocore's own)."""
        from kumocore.mail.internal_responses import delayed

        if self.logs is None:
            return None
        now = time.time()
        return self._submit(
            RecordType.Delayed, self._subject(message), message, queue=queue,
            response=delayed(context, due, now), when=now)

    def rebind(
        self, message: MessageLike, *, old_queue: str, queue: str, reason: str
    ) -> Ticket | None:
        """An operator moved ``message`` from ``old_queue`` into ``queue`` (``AdminRebind``)."""
        from kumocore.mail.internal_responses import rebound

        if self.logs is None:
            return None
        return self._submit(
            RecordType.AdminRebind, self._subject(message), message, queue=queue,
            response=rebound(old_queue, queue, reason))
