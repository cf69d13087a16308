"""Log records exactly as KumoMTA writes them, and a cheap way to build them.

One :class:`LogRecord` per event is shared by every sink; sinks differ only in the meta keys
and headers they select, so selection happens late, in :meth:`LogRecord.to_json`. Keys and
their order follow KumoMTA's ``JsonLogRecord``: its tools read kumocore's logs unchanged."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

import orjson

from kumocore.logs.select import HeaderPairs, capture_headers, select_headers, select_meta
from kumocore.mail.response import Response

_OPTIONAL_FIELDS = (
    "tls_cipher", "tls_protocol_version", "tls_peer_subject_name", "provider_name", "session_id")


class RecordType(StrEnum):
    """The ``type`` of a record; ``Any`` only appears in ``per_record`` configuration."""

    Reception = "Reception"
    Delivery = "Delivery"
    Bounce = "Bounce"
    TransientFailure = "TransientFailure"
    Expiration = "Expiration"
    AdminBounce = "AdminBounce"
    OOB = "OOB"
    Feedback = "Feedback"
    Rejection = "Rejection"
    AdminRebind = "AdminRebind"
    DeferredInjectionRebind = "DeferredInjectionRebind"
    Delayed = "Delayed"
    XferOut = "XferOut"
    XferIn = "XferIn"
    Any = "Any"


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


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """The host we talked to: MX host name (or EHLO name) and its IP address."""

    name: str
    addr: str
    #: Resolved through DNSSEC-validated records (KumoMTA writes it only when true).
    is_secure: bool = False

    def to_json(self) -> dict[str, Any]:
        if self.is_secure:
            return {"name": self.name, "addr": self.addr, "is_secure": True}
        return {"name": self.name, "addr": self.addr}


def rfc3339_ns(unix: float) -> str:
    """``2025-09-12T11:08:01.440526026Z``: KumoMTA writes event times with nanoseconds."""
    secs = math.floor(unix)
    frac = round((unix - secs) * 1_000_000_000)  # split first: unix * 1e9 loses ~100 ns
    if frac == 1_000_000_000:
        secs, frac = secs + 1, 0
    return _rfc3339_seconds(secs) + f".{frac:09d}Z"


@functools.lru_cache(maxsize=64)
def _rfc3339_seconds(secs: int) -> str:
    # Every record has two times, and a busy second has thousands of records: the date
    # and time of day are formatted once per second, not twice per record.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One event about one message. ``timestamp``/``created`` are unix seconds (float);
    JSON carries them as integer seconds plus RFC3339 ``event_time``/``created_time``."""

    type: RecordType
    id: str
    sender: str
    #: One address, or a tuple of them for a batch (JSON: a string, or a list as KumoMTA).
    recipient: str | tuple[str, ...]
    queue: str
    site: str
    size: int
    response: Response
    peer_address: PeerAddress | None
    timestamp: float
    created: float
    num_attempts: int
    bounce_classification: str
    egress_pool: str | None
    egress_source: str | None
    source_address: Mapping[str, Any] | None
    feedback_report: Mapping[str, Any] | None
    meta: Mapping[str, Any]
    header_pairs: HeaderPairs
    delivery_protocol: str | None
    reception_protocol: str | None
    nodeid: str
    tls_cipher: str | None = None
    tls_protocol_version: str | None = None
    tls_peer_subject_name: tuple[str, ...] | None = None
    provider_name: str | None = None
    session_id: str | None = None

    def to_json(
        self, meta_keys: Sequence[str] = (), header_names: Sequence[str] = ()
    ) -> dict[str, Any]:
        """The KumoMTA JSON object, with the configured meta keys and headers selected."""
        out: dict[str, Any] = {
            "type": self.type.value,
            "id": self.id,
            "sender": self.sender,
            "recipient": self.recipient if type(self.recipient) is str
            else list(self.recipient),
            "queue": self.queue,
            "site": self.site,
            "size": self.size,
            "response": self.response.to_json(),
            "peer_address": self.peer_address.to_json() if self.peer_address else None,
            "timestamp": int(self.timestamp),
            "event_time": rfc3339_ns(self.timestamp),
            "created": int(self.created),
            "created_time": rfc3339_ns(self.created),
            "num_attempts": self.num_attempts,
            "bounce_classification": self.bounce_classification,
            "egress_pool": self.egress_pool,
            "egress_source": self.egress_source,
            "source_address": dict(self.source_address) if self.source_address else None,
            "feedback_report": dict(self.feedback_report) if self.feedback_report else None,
            "meta": select_meta(self.meta, meta_keys),
            "headers": select_headers(self.header_pairs, header_names),
            "delivery_protocol": self.delivery_protocol,
            "reception_protocol": self.reception_protocol,
            "nodeid": self.nodeid,
        }
        for key in _OPTIONAL_FIELDS:  # KumoMTA omits these when absent (no null)
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out

    def to_json_bytes(
        self, meta_keys: Sequence[str] = (), header_names: Sequence[str] = ()
    ) -> bytes:
        """:meth:`to_json` serialised with orjson (no trailing newline)."""
        return orjson.dumps(self.to_json(meta_keys, header_names))


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
