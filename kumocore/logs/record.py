"""Log records exactly as KumoMTA writes them, and a cheap way to build them.

One :class:`LogRecord` per event is shared by every sink; sinks differ only in the meta keys
and headers they select, so selection happens late, in :meth:`LogRecord.to_json`. Keys and
their order follow KumoMTA's ``JsonLogRecord``: its tools read kumocore's logs unchanged."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Protocol

import orjson

from kumocore.response import Response

#: (name, value) pairs in message order.
HeaderPairs = tuple[tuple[str, str], ...]

_NO_HEADERS: HeaderPairs = ()
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
    """What a record needs from :class:`kumocore.message.Message` (structural typing)."""

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
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


#: A compiled ``meta``/``headers`` name list: (exact names, ``prefix*`` prefixes).
_Selector = tuple[tuple[str, ...], tuple[str, ...]]


@lru_cache(maxsize=256)
def _compile(names: tuple[str, ...], fold_case: bool) -> _Selector:
    # Sinks pass the same configured list for every record; caching the compiled form keeps
    # to_json free of per-record parsing.
    names = tuple(n.lower() for n in names) if fold_case else names
    return (tuple(n for n in names if not n.endswith("*")),
            tuple(n[:-1] for n in names if n.endswith("*")))


def _header_wanted(sel: _Selector, lower_name: str) -> bool:
    return lower_name in sel[0] or lower_name.startswith(sel[1])


def select_meta(meta: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """KumoMTA's meta selection: case-sensitive; ``x_*`` takes every key with that prefix
    (null values included); an exact name is skipped when absent or null."""
    exact, prefixes = _compile(tuple(names), False)
    selected = {name: meta[name] for name in exact if meta.get(name) is not None}
    if prefixes:
        selected.update((k, v) for k, v in meta.items() if k.startswith(prefixes))
    return selected


def select_headers(pairs: Iterable[tuple[str, str]], names: Sequence[str]) -> dict[str, Any]:
    """KumoMTA's header selection: names match case-insensitively (``X-*`` by prefix); the
    key is the header's own spelling (first occurrence) and a repeated header gives a list
    of its values in message order."""
    if not names:
        return {}
    sel = _compile(tuple(names), True)
    grouped: dict[str, tuple[str, list[str]]] = {}
    for name, value in pairs:
        lower = name.lower()
        if _header_wanted(sel, lower):
            grouped.setdefault(lower, (name, []))[1].append(value)
    return {
        spelling: values[0] if len(values) == 1 else values for spelling, values in grouped.values()
    }


def capture_headers(message: MessageLike, names: Sequence[str]) -> HeaderPairs:
    """The header pairs any of ``names`` could select, or ``()`` when nobody wants headers.

    Records outlive their message: they wait in sink buffers after delivery dropped the
    body. Holding the message (or its whole header block) would pin that memory for every
    buffered record, and reading headers may load the body back from the spool (KumoMTA
    warns about that cost). So a record keeps only the pairs some sink asked for (the union
    of the sinks' ``header_names``); when none wants headers — the common case — it stores
    the shared empty tuple without touching the message at all.
    """
    if not names:
        return _NO_HEADERS
    sel = _compile(tuple(names), True)
    return tuple((n, v) for n, v in message.get_all_headers() if _header_wanted(sel, n.lower()))


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One event about one message. ``timestamp``/``created`` are unix seconds (float);
    JSON carries them as integer seconds plus RFC3339 ``event_time``/``created_time``."""

    type: RecordType
    id: str
    sender: str
    recipient: str
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
            "recipient": self.recipient,
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


def make_record(
    type: RecordType | str,
    message: MessageLike,
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
    header_names: Sequence[str] = (),
    session_id: str | None = None,
    provider_name: str | None = None,
    tls_cipher: str | None = None,
    tls_protocol_version: str | None = None,
    tls_peer_subject_name: Sequence[str] | None = None,
) -> LogRecord:
    """Snapshot ``message`` into a record for an event happening at ``when`` (default now).

    ``header_names`` is the union of the sinks' header patterns
    (:attr:`kumocore.logs.dispatch.LogDispatcher.header_names`); leave it empty and the
    message's headers are never read. ``reception_protocol`` defaults to the message's
    ``reception_protocol`` meta, as in KumoMTA. ``peer_address`` may be a ``{name, addr}``
    mapping and ``source_address`` a plain ``"ip:port"`` (taken as ``{address: ...}``).
    """
    if isinstance(peer_address, Mapping):
        peer_address = PeerAddress(str(peer_address.get("name", "")),
                                   str(peer_address.get("addr", "")),
                                   peer_address.get("is_secure") is True)
    if isinstance(source_address, str):
        source_address = {"address": source_address}
    meta = dict(message.meta)  # a copy: policy may keep changing meta after this event
    if reception_protocol is None:
        value = meta.get("reception_protocol")
        reception_protocol = str(value) if value is not None else None
    return LogRecord(
        type=RecordType(type),
        id=message.id,
        sender=str(message.sender),
        recipient=str(message.recipient),
        queue=queue,
        site=site,
        size=message.size,
        response=response,
        peer_address=peer_address,
        timestamp=time.time() if when is None else when,
        created=message.created,
        num_attempts=message.num_attempts,
        bounce_classification=bounce_classification,
        egress_pool=egress_pool,
        egress_source=egress_source,
        source_address=_frozen(source_address),
        feedback_report=_frozen(feedback_report),
        meta=MappingProxyType(meta),
        header_pairs=capture_headers(message, header_names),
        delivery_protocol=delivery_protocol,
        reception_protocol=reception_protocol,
        nodeid=nodeid,
        tls_cipher=tls_cipher,
        tls_protocol_version=tls_protocol_version,
        tls_peer_subject_name=tuple(tls_peer_subject_name) if tls_peer_subject_name else None,
        provider_name=provider_name,
        session_id=session_id,
    )
