"""What DSN and ARF reports share: their error, remote MTA names, and how their parts are
read (header-style fields, typed values, dates, the returned message).

RFC 3464 delivery status notifications (:mod:`kumocore.reports.rfc3464`) and RFC 5965
feedback reports (:mod:`kumocore.reports.rfc5965`) are both ``multipart/report``
messages whose report part is a block of header-style fields, and which may return the
original message. Its own module so that neither parser imports the other for them.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.message import Message
from email.utils import parsedate_to_datetime

_FOLD = re.compile(r"\r?\n(?=[ \t])")


class ReportError(ValueError):
    """The message says it is a DSN or ARF report but its report part is malformed."""


@dataclass(frozen=True)
class RemoteMta:
    """``Reporting-MTA: dns; mx.example.com`` → ``RemoteMta("dns", "mx.example.com")``."""

    mta_type: str
    name: str

    def to_dict(self) -> dict[str, str]:
        return {"mta_type": self.mta_type, "name": self.name}


def _typed(name: str, value: str) -> tuple[str, str]:
    """``type; value`` fields (Reporting-MTA, Final-Recipient, Diagnostic-Code...)."""
    kind, sep, rest = value.partition(";")
    if not sep:
        raise ReportError(f"{name}: expected 'type; value', got {value!r}")
    return kind.strip(), rest.strip()


def header_fields(msg: Message) -> dict[str, list[str]]:
    """Fields of a header block by lower-case name, each value unfolded and stripped."""
    fields: dict[str, list[str]] = {}
    for name, value in msg.items():
        fields.setdefault(name.lower(), []).append(_FOLD.sub("", str(value)).strip())
    return fields


def take_one(fields: dict[str, list[str]], name: str) -> str | None:
    """Remove and return a single-valued field; what remains ends up in ``extensions``."""
    values = fields.pop(name, [])
    if len(values) > 1:
        raise ReportError(f"{name} must appear once, found {len(values)}")
    return values[0] if values else None


def take_required(fields: dict[str, list[str]], name: str) -> str:
    value = take_one(fields, name)
    if value is None:
        raise ReportError(f"required field {name} is missing")
    return value


def remote_mta(value: str | None) -> RemoteMta | None:
    if value is None:
        return None
    return RemoteMta(*_typed("MTA name", value))


def parse_date(name: str, value: str | None) -> datetime | None:
    """An RFC 5322 date as an aware UTC datetime; ReportError names the field if invalid."""
    if value is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise ReportError(f"{name}: {value!r} is not an RFC 5322 date") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def body_bytes(part: Message) -> bytes | None:
    """The body of a leaf part, transfer-decoded; an embedded message re-serialised."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the stdlib parsed message/* bodies into a Message
        if not payload:
            return None
        buffer = io.BytesIO()
        # maxheaderlen=0: reproduce the returned headers as they were, not re-folded.
        BytesGenerator(buffer, mangle_from_=False, maxheaderlen=0).flatten(payload[0])
        return buffer.getvalue()
    raw = part.get_payload(decode=True)
    return raw if isinstance(raw, bytes) else None


#: Parts that return the original message (RFC 3462, RFC 6522, RFC 6533).
RETURNED_CONTENT = (
    "message/rfc822",
    "text/rfc822-headers",
    "message/global",
    "message/global-headers",
)


def returned_message(parts: list[Message]) -> str | None:
    """The returned original message (or its headers) of a report, LF line endings."""
    original: str | None = None
    for part in parts:
        if part.get_content_type() in RETURNED_CONTENT:
            raw = body_bytes(part)
            if raw is not None:
                original = raw.decode("utf-8", "replace").replace("\r\n", "\n")
    return original
