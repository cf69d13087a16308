"""Parse RFC 5965 ARF feedback reports (spam complaints from feedback loops).

The result is the ``feedback_report`` object of KumoMTA's ``Feedback`` log record, with its
field names (including its ``original_rcpto_to`` spelling), so that log consumers written for
KumoMTA read kumocore's records unchanged.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import json
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any

from kumocore.digits import decimal
from kumocore.reports.report_fields import (
    RETURNED_CONTENT,
    ReportError,
    body_bytes,
    header_fields,
    parse_date,
    remote_mta,
    returned_message,
    take_one,
    take_required,
)

#: The JSON key/value that marks a header as our own supplemental trace (``X-KumoRef``).
TRACE_MARKER = ("_@_", "\\_/")


def parse_rfc5965(data: bytes) -> dict[str, Any] | None:
    """The feedback report in ``data`` as a dict, None when it is not an ARF report.

    Raises :class:`ReportError` when the message is ``report-type=feedback-report`` but has
    no ``message/feedback-report`` part or lacks Feedback-Type, User-Agent or Version.
    """
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    if msg.get_content_type() != "multipart/report" or not msg.is_multipart():
        return None
    if str(msg.get_param("report-type", "")).lower() != "feedback-report":
        return None
    parts = [p for p in msg.get_payload() if isinstance(p, Message)]
    report = next((p for p in parts if p.get_content_type() == "message/feedback-report"), None)
    if report is None:
        raise ReportError("feedback report has no message/feedback-report part")
    fields = _report_fields(report)
    return {
        "feedback_type": take_required(fields, "feedback-type"),
        "user_agent": take_required(fields, "user-agent"),
        "version": take_required(fields, "version"),
        "arrival_date": _arrival_date(fields),
        "incidents": _incidents(take_one(fields, "incidents")),
        "original_envelope_id": take_one(fields, "original-envelope-id"),
        "original_mail_from": _address(take_one(fields, "original-mail-from")),
        "reporting_mta": _mta(take_one(fields, "reporting-mta")),
        "source_ip": take_one(fields, "source-ip"),
        "authentication_results": fields.pop("authentication-results", []),
        "original_rcpto_to": [_address(v) for v in fields.pop("original-rcpt-to", [])],
        "reported_domain": fields.pop("reported-domain", []),
        "reported_uri": fields.pop("reported-uri", []),
        "extensions": fields,
        "original_message": returned_message(parts),
        "supplemental_trace": _supplemental_trace(parts),
    }


def _report_fields(part: Message) -> dict[str, list[str]]:
    # The stdlib parses message/* bodies into a Message whose headers are the report
    # fields; a transfer-encoded or unusual body comes back as bytes instead.
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return header_fields(payload[0])
    text = (body_bytes(part) or b"").decode("utf-8", "replace")
    return header_fields(email.message_from_string(text))


def _arrival_date(fields: dict[str, list[str]]) -> str | None:
    """Arrival-Date (or the older Received-Date) as RFC 3339; None when unparseable.

    Lenient on purpose, as KumoMTA is: feedback loops emit odd dates, and losing a
    complaint over its date would be worse than logging it without one.
    """
    for name in ("arrival-date", "received-date"):
        try:
            when = parse_date(name, take_one(fields, name))
        except ReportError:
            return None
        if when is not None:
            return when.isoformat().replace("+00:00", "Z")
    return None


def _incidents(value: str | None) -> int | None:
    if value is None:
        return None
    number = decimal(value)
    if number is None:
        raise ReportError(f"incidents: {value!r} is not a number")
    return number


def _address(value: str | None) -> str | None:
    """``<user@example.com>`` → ``user@example.com`` (an envelope address, no brackets)."""
    if value is None:
        return None
    return value.strip().removeprefix("<").removesuffix(">").strip()


def _mta(value: str | None) -> dict[str, str] | None:
    mta = remote_mta(value)
    return None if mta is None else mta.to_dict()


def _supplemental_trace(parts: list[Message]) -> Any:
    """The JSON our own trace header (``X-KumoRef``) carries in the returned message.

    Any ``X-`` header qualifies whose value, folding whitespace removed, is base64 of a JSON
    object holding the marker ``"_@_": "\\_/"``; the marker checks it is ours and not some
    other base64 header added on the way. The object minus the marker is returned.
    """
    for part in parts:
        if part.get_content_type() not in RETURNED_CONTENT:
            continue
        raw = body_bytes(part)
        if raw is None:
            continue
        headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
        for name, value in headers.items():
            if not name.lower().startswith("x-"):
                continue
            trace = _decode_trace("".join(str(value).split()))
            if trace is not None:
                return trace
    return None


def _decode_trace(encoded: str) -> dict[str, Any] | None:
    try:
        decoded = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        return None
    key, marker = TRACE_MARKER
    if not isinstance(decoded, dict) or decoded.get(key) != marker:
        return None
    return {k: v for k, v in decoded.items() if k != key}
