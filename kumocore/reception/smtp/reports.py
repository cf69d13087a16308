"""Out-of-band bounces and feedback reports arriving on ``log_oob``/``log_arf`` domains.

At the end of DATA, for a recipient domain with ``log_arf``/``log_oob`` set (KumoMTA
order: ARF first, then DSN):

* an RFC 5965 feedback report is logged as a ``Feedback`` record carrying the parsed
  ``feedback_report``;
* an RFC 3464 delivery status notification is logged as one ``OOB`` record per recipient
  whose ``Action`` is ``failed``: sender = this message's envelope recipient (the bounce
  address, i.e. the original return path), recipient = Original- or Final-Recipient,
  response = the SMTP diagnostic (code, Status as enhanced code, text), peer = the
  Reporting-MTA, time = Last-Attempt-Date.

Either way the message is queued only for ``LogThenRelay``; ``LogThenDrop`` logs and
discards it (250 to the client). A report that claims to be one but is malformed is
treated as "not a report" — it gets no special treatment and, unless relaying is allowed,
the usual ``550 5.7.1 relaying not permitted``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from kumocore.logs.record import PeerAddress
from kumocore.mail.response import EnhancedCode, Response
from kumocore.reception.smtp.relay import IGNORE, LOG_THEN_RELAY, RelayDisposition

if TYPE_CHECKING:
    from kumocore.logs.journal import Journal
    from kumocore.mail.message import Message
    from kumocore.reports import DeliveryStatusReport, RecipientStatus

log = structlog.get_logger("kumocore.reception.smtp.reports")


@dataclass(frozen=True, slots=True)
class Report:
    """A report found in a received message, and whether that message is still relayed."""

    relay: bool
    feedback: dict[str, Any] | None = None
    dsn: DeliveryStatusReport | None = None


#: A report larger than this is parsed on a worker thread, not on the event loop.
OFF_LOOP_BYTES = 256 * 1024


async def find_report(message: Message, disposition: RelayDisposition) -> Report | None:
    """The ARF or DSN report in ``message``, when its domain asks to log one.

    The messages of one transaction share their body: it is parsed once for all of them
    (the result is kept on the shared body), and on a thread when it is large, so that a
    20 MiB DSN does not stall other clients.
    """
    if disposition.log_arf == IGNORE and disposition.log_oob == IGNORE:
        return None
    content_type = (message.get_first_named_header_value("Content-Type") or "").lower()
    if "multipart/report" not in content_type:
        return None  # cheap test first: neither parser accepts anything else
    want = (disposition.log_arf != IGNORE, disposition.log_oob != IGNORE)
    key = f"report:{want}"
    shared = message.shared
    if shared is not None and key in shared.derived:
        found = shared.derived[key]
    else:
        # The head holds only trace headers: a shared body alone is the same report.
        data = shared.data if shared is not None else message.data
        if len(data) > OFF_LOOP_BYTES:
            found = await asyncio.to_thread(_parse, data, *want)
        else:
            found = _parse(data, *want)
        if shared is not None:
            shared.derived[key] = found
    if isinstance(found, Exception):
        log.info("malformed report ignored", id=message.id, error=str(found))
        return None
    if isinstance(found, dict):
        return Report(relay=disposition.log_arf == LOG_THEN_RELAY, feedback=found)
    if found is not None:
        if found.recipients_skipped:
            log.warning("report has more recipients than are logged", id=message.id,
                        logged=len(found.per_recipient), skipped=found.recipients_skipped)
        return Report(relay=disposition.log_oob == LOG_THEN_RELAY, dsn=found)
    return None


def _parse(
    data: bytes, arf: bool, oob: bool
) -> dict[str, Any] | DeliveryStatusReport | Exception | None:
    """The ARF report (a dict) or the DSN in ``data``; a malformed one as its error.

    Only the parts the records need are parsed (:func:`~kumocore.reports.trim.trim_report`):
    the stdlib parser holds the GIL for the whole of what it is given, even on a thread.
    """
    from kumocore.reports import ReportError, parse_rfc3464, parse_rfc5965
    from kumocore.reports.trim import NotAReport, trim_report

    try:
        data = trim_report(data)
    except NotAReport as exc:
        log.info("report past its bounds treated as a plain message", error=str(exc))
        return None
    try:
        if arf and (feedback := parse_rfc5965(data)) is not None:
            return feedback
        if oob:
            return parse_rfc3464(data)
    except ReportError as exc:
        return exc
    return None


async def log_report(
    journal: Journal, message: Message, report: Report, *, peer_ip: str, ehlo: str
) -> None:
    """Log the ``Feedback`` or ``OOB`` records for ``report``, and the ``Reception`` of
    a dropped DSN."""
    peer = PeerAddress(ehlo, peer_ip)
    queue = message.queue_name()
    if report.feedback is not None:
        await journal.feedback(message, report.feedback, queue=queue, peer=peer)
        return
    assert report.dsn is not None
    reporter = PeerAddress(report.dsn.reporting_mta.name, peer_ip)
    for status in report.dsn.per_recipient:
        if status.action != "failed":
            continue
        when = status.last_attempt_date.timestamp() if status.last_attempt_date else None
        await journal.oob(message, failed=status.recipient, response=_oob_response(status),
                          queue=queue, peer=reporter, when=when)
    if not report.relay:
        # A relayed message gets its Reception record from the intake; a dropped DSN is
        # still a received message, as in KumoMTA's logs.
        journal.reception(message, queue=queue, peer=peer, protocol="ESMTP")


def _oob_response(status: RecipientStatus) -> Response:
    code, content = (550, "")
    if status.diagnostic_code is not None:
        code, content = status.diagnostic_code.smtp_reply()
    enhanced = EnhancedCode(
        status.status.status_class, status.status.subject, status.status.detail)
    # The diagnostic text often repeats the enhanced code; keep it once.
    prefix = f"{enhanced} "
    if content.startswith(prefix):
        content = content[len(prefix):]
    return Response(code, content, enhanced_code=enhanced)
