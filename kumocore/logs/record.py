"""Log records exactly as KumoMTA writes them.

One :class:`LogRecord` per event is shared by every sink; sinks differ only in the meta keys
and headers they select, so selection happens late, in :meth:`LogRecord.to_json`. Keys and
their order follow KumoMTA's ``JsonLogRecord``: its tools read kumocore's logs unchanged.
A cheap way to build them is :mod:`kumocore.logs.record_builder`."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from kumocore.logs.select import HeaderPairs, select_headers, select_meta
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
