"""Parse RFC 3464 delivery status notifications (out-of-band bounces).

A remote MTA that accepted a message and later failed to deliver it sends a DSN back to the
return path. With ``log_oob`` on the bounce domain, kumocore logs one ``OOB`` record per
``Action: failed`` recipient of such a report, as KumoMTA does. What it shares with
:mod:`kumocore.reports.rfc5965` (header fields, typed values, dates, the returned message,
:class:`ReportError`, :class:`RemoteMta`) is :mod:`kumocore.reports.report_fields`.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message

from kumocore.digits import decimal
from kumocore.reports.report_fields import (
    RemoteMta,
    ReportError,
    _typed,
    body_bytes,
    header_fields,
    parse_date,
    remote_mta,
    returned_message,
    take_one,
    take_required,
)

#: At most this many per-recipient blocks are taken from one report (so at most this many
#: OOB records per received message); the rest are ignored, and the count says so.
MAX_REPORT_RECIPIENTS = 100
#: At most this many top-level MIME parts of a report are looked at.
MAX_REPORT_PARTS = 16

ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
_STATUS = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+(.*))?$", re.DOTALL)


@dataclass(frozen=True)
class Recipient:
    """``Final-Recipient: rfc822; user@example.com``; angle brackets are removed."""

    recipient_type: str
    recipient: str


@dataclass(frozen=True)
class DiagnosticCode:
    diagnostic_type: str
    diagnostic: str

    def smtp_reply(self) -> tuple[int, str]:
        """``(code, content)`` the way KumoMTA fills an OOB record's response.

        ``smtp; 550 5.1.1 unknown`` → ``(550, "5.1.1 unknown")``; text without a leading
        number keeps 550 and all the text; a non-SMTP diagnostic gives ``(550, "")``.
        """
        if self.diagnostic_type.lower() != "smtp":
            return 550, ""
        code, sep, content = self.diagnostic.partition(" ")
        number = decimal(code) if sep else None
        if number is not None:
            return number, content
        return 550, self.diagnostic


@dataclass(frozen=True)
class ReportStatus:
    """``Status: 5.1.1`` (an RFC 3463 enhanced status code, maybe followed by a comment)."""

    status_class: int
    subject: int
    detail: int
    comment: str | None = None

    def __str__(self) -> str:
        return f"{self.status_class}.{self.subject}.{self.detail}"

    def to_enhanced_code(self) -> dict[str, int]:
        """The log record's ``enhanced_code`` object."""
        return {"class": self.status_class, "subject": self.subject, "detail": self.detail}


@dataclass(frozen=True)
class RecipientStatus:
    """One per-recipient block of the report."""

    final_recipient: Recipient
    action: str
    status: ReportStatus
    original_recipient: Recipient | None = None
    remote_mta: RemoteMta | None = None
    diagnostic_code: DiagnosticCode | None = None
    last_attempt_date: datetime | None = None
    final_log_id: str | None = None
    will_retry_until: datetime | None = None
    extensions: dict[str, list[str]] = field(default_factory=dict)

    @property
    def recipient(self) -> str:
        """The address to report: Original-Recipient when given, else Final-Recipient."""
        return (self.original_recipient or self.final_recipient).recipient


@dataclass(frozen=True)
class DeliveryStatusReport:
    reporting_mta: RemoteMta
    per_recipient: list[RecipientStatus]
    original_envelope_id: str | None = None
    arrival_date: datetime | None = None
    received_from_mta: RemoteMta | None = None
    dsn_gateway: RemoteMta | None = None
    extensions: dict[str, list[str]] = field(default_factory=dict)
    #: The returned message (or its headers), line endings normalised to LF.
    original_message: str | None = None
    #: Per-recipient blocks left out past :data:`MAX_REPORT_RECIPIENTS` (> 0: some were).
    recipients_skipped: int = 0


def parse_rfc3464(data: bytes) -> DeliveryStatusReport | None:
    """The DSN in ``data``, None when it is not one; :class:`ReportError` when malformed."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    if msg.get_content_type() != "multipart/report" or not msg.is_multipart():
        return None
    report_type = str(msg.get_param("report-type", "")).lower()
    payload = msg.get_payload()
    top = payload[:MAX_REPORT_PARTS] if isinstance(payload, list) else []
    parts = [p for p in top if isinstance(p, Message)]
    status_parts = [p for p in parts if p.get_content_type() in _STATUS_TYPES]
    if report_type not in ("delivery-status", "") or (not report_type and not status_parts):
        return None
    if not status_parts:
        raise ReportError("delivery status report has no message/delivery-status part")
    blocks = _status_blocks(status_parts[0])
    skipped = max(0, len(blocks) - 1 - MAX_REPORT_RECIPIENTS)
    blocks = blocks[: MAX_REPORT_RECIPIENTS + 1]
    if not blocks:
        raise ReportError("delivery status report has an empty message/delivery-status part")
    per_message = blocks[0]
    return DeliveryStatusReport(
        reporting_mta=RemoteMta(
            *_typed("reporting-mta", take_required(per_message, "reporting-mta"))
        ),
        original_envelope_id=take_one(per_message, "original-envelope-id"),
        dsn_gateway=remote_mta(take_one(per_message, "dsn-gateway")),
        received_from_mta=remote_mta(take_one(per_message, "received-from-mta")),
        arrival_date=parse_date("arrival-date", take_one(per_message, "arrival-date")),
        per_recipient=[_recipient_status(block) for block in blocks[1:]],
        extensions=per_message,
        original_message=returned_message(parts),
        recipients_skipped=skipped,
    )


_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")


def _status_blocks(part: Message) -> list[dict[str, list[str]]]:
    """The header blocks (per-message first, then one per recipient) of the status part."""
    payload = part.get_payload()
    if part.get_content_type() == "message/delivery-status" and isinstance(payload, list):
        messages = [p for p in payload if isinstance(p, Message)]  # the stdlib split it
    else:  # message/global-delivery-status: split the text into blocks ourselves
        text = (body_bytes(part) or b"").decode("utf-8", "replace")
        chunks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
        # One more than the cap, so that the caller sees that some were left out.
        messages = [email.message_from_string(chunk + "\n")
                    for chunk in chunks[: MAX_REPORT_RECIPIENTS + 2]]
    return [fields for fields in map(header_fields, messages) if fields]


def _recipient_status(fields: dict[str, list[str]]) -> RecipientStatus:
    action = take_required(fields, "action")
    if action.lower() not in ACTIONS:
        raise ReportError(f"Action: {action!r} is not one of {', '.join(sorted(ACTIONS))}")
    original = take_one(fields, "original-recipient")
    diagnostic = take_one(fields, "diagnostic-code")
    return RecipientStatus(
        final_recipient=_recipient("final-recipient", take_required(fields, "final-recipient")),
        original_recipient=None if original is None else _recipient("original-recipient", original),
        action=action.lower(),
        status=_status(take_required(fields, "status")),
        remote_mta=remote_mta(take_one(fields, "remote-mta")),
        diagnostic_code=(
            None if diagnostic is None else DiagnosticCode(*_typed("diagnostic-code", diagnostic))
        ),
        last_attempt_date=parse_date("last-attempt-date", take_one(fields, "last-attempt-date")),
        final_log_id=take_one(fields, "final-log-id"),
        will_retry_until=parse_date("will-retry-until", take_one(fields, "will-retry-until")),
        extensions=fields,
    )


def _status(value: str) -> ReportStatus:
    match = _STATUS.match(value)
    if match is None:
        raise ReportError(f"Status: {value!r} is not an enhanced status code like 5.1.1")
    klass, subject, detail, comment = match.groups()
    return ReportStatus(int(klass), int(subject), int(detail), comment)


def _recipient(name: str, value: str) -> Recipient:
    kind, address = _typed(name, value)
    if kind.lower() == "rfc822":
        address = address.strip().removeprefix("<").removesuffix(">")
    return Recipient(kind, address)

